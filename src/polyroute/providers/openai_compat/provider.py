"""I/O for OpenAI-compatible hosts: POST {base_url}/chat/completions, JSON or SSE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager

import aiohttp
import msgspec

from polyroute.catalog.types import EndpointSpec, ProviderSpec
from polyroute.domain.chat import ChatRequest, Chunk, Completion
from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.providers.http_errors import error_from_lean_response, error_from_response
from polyroute.providers.lean_http import ConnectFailed, LeanClient, LeanResponse, ProtocolBroken
from polyroute.providers.openai_compat.decode import decode_chunk, decode_completion
from polyroute.providers.openai_compat.encode import encode_request
from polyroute.providers.registry import ProviderContext
from polyroute.providers.sse import iter_sse_data

_json_decode = msgspec.json.decode
_json_encode = msgspec.json.encode


class OpenAICompatProvider:
    def __init__(self, spec: ProviderSpec, ctx: ProviderContext) -> None:
        self.spec = spec
        self._session = ctx.session
        self._lean = ctx.lean
        self._timeouts = ctx.timeouts
        self._url = spec.base_url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json", **spec.headers}
        if spec.api_key:
            headers["Authorization"] = f"Bearer {spec.api_key.reveal()}"
        self._headers = headers
        # The lean client sends exactly these (plus Host and Content-Length); aiohttp adds its own.
        self._lean_headers = {"Accept": "application/json", "User-Agent": "polyroute", **headers}

    def _post(self, body: dict[str, object]) -> AbstractAsyncContextManager[aiohttp.ClientResponse | LeanResponse]:
        """Send the request; yield the response once its headers arrived with a 2xx status."""
        if self._lean is not None:
            return self._post_lean(self._lean, body)
        return self._post_aiohttp(body)

    async def _open_lean(self, lean: LeanClient, body: dict[str, object]) -> LeanResponse:
        """The response once its headers arrived with a 2xx status; the caller closes it."""
        try:
            response = await lean.post(self._url, _json_encode(body), self._lean_headers, self._timeouts.first_byte_s)
        except TimeoutError:
            raise UpstreamError(FailureKind.TIMEOUT, "upstream did not answer in time") from None
        except OSError as exc:  # ConnectFailed included
            raise UpstreamError(FailureKind.CONNECT, f"cannot reach upstream: {type(exc).__name__}") from None
        except ProtocolBroken as exc:
            raise UpstreamError(FailureKind.PROTOCOL, f"upstream request failed: {exc}") from None
        if response.status >= 400:
            try:
                raise await error_from_lean_response(response, self.spec.api_key)
            finally:
                response.close()
        return response

    @asynccontextmanager
    async def _post_lean(self, lean: LeanClient, body: dict[str, object]) -> AsyncIterator[LeanResponse]:
        response = await self._open_lean(lean, body)
        try:
            yield response
        finally:
            response.close()  # back to the pool when the whole response arrived, else the connection drops

    @asynccontextmanager
    async def _post_aiohttp(self, body: dict[str, object]) -> AsyncIterator[aiohttp.ClientResponse]:
        try:
            async with asyncio.timeout(self._timeouts.first_byte_s):
                response = await self._session.post(self._url, data=_json_encode(body), headers=self._headers)
        except TimeoutError:
            raise UpstreamError(FailureKind.TIMEOUT, "upstream did not answer in time") from None
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise UpstreamError(FailureKind.CONNECT, f"cannot reach upstream: {type(exc).__name__}") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(FailureKind.PROTOCOL, f"upstream request failed: {type(exc).__name__}") from None
        try:
            if response.status >= 400:
                raise await error_from_response(response, self.spec.api_key)
            yield response
        finally:
            # No-op once the body was read to the end (the connection is back in the pool);
            # otherwise (client gone, error) it drops the connection so the upstream stops.
            response.close()

    async def complete(self, request: ChatRequest, endpoint: EndpointSpec) -> Completion:
        body = encode_request(request, endpoint, stream=False)
        if self._lean is not None:
            # Not through `_post`: an async context manager is an async generator, which the event
            # loop registers in a WeakSet on its first step (issue #9: every object counts here).
            lean_response = await self._open_lean(self._lean, body)
            try:
                raw = await self._read(lean_response)
            finally:
                lean_response.close()  # back to the pool when the whole response arrived
        else:
            async with self._post_aiohttp(body) as response:
                raw = await self._read(response)
        try:
            parsed = _json_decode(raw)
        except msgspec.DecodeError:
            raise UpstreamError(FailureKind.PROTOCOL, "upstream returned invalid JSON") from None
        return decode_completion(parsed)

    async def _read(self, response: aiohttp.ClientResponse | LeanResponse) -> bytes:
        try:
            if isinstance(response, LeanResponse):  # its own read deadline: no timeout context
                return await response.read(self._timeouts.first_byte_s)
            async with asyncio.timeout(self._timeouts.first_byte_s):
                return await response.read()
        except TimeoutError:
            raise UpstreamError(FailureKind.TIMEOUT, "upstream body did not arrive in time") from None
        except (aiohttp.ClientError, ConnectionError, ProtocolBroken, ConnectFailed) as exc:
            raise UpstreamError(FailureKind.PROTOCOL, f"upstream body broke: {type(exc).__name__}") from None

    async def stream(self, request: ChatRequest, endpoint: EndpointSpec) -> AsyncGenerator[Chunk, None]:
        body = encode_request(request, endpoint, stream=True)
        async with self._post(body) as response:
            finished = False
            # aclosing: a `return` inside this loop leaves the inner generator to the GC otherwise.
            events = iter_sse_data(response, first_byte_s=self._timeouts.first_byte_s, idle_s=self._timeouts.idle_s)
            async with aclosing(events):
                async for data in events:
                    if data == b"[DONE]":
                        return
                    try:
                        chunk = decode_chunk(_json_decode(data))
                    except msgspec.DecodeError:
                        raise UpstreamError(FailureKind.PROTOCOL, "upstream sent an invalid stream chunk") from None
                    if any(choice.get("finish_reason") for choice in chunk.choices):
                        finished = True
                    yield chunk
            if not finished:
                raise UpstreamError(FailureKind.PROTOCOL, "upstream stream ended before it finished")

    async def aclose(self) -> None:
        return None
