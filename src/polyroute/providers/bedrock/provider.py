"""I/O for Bedrock: POST {base_url}/model/{modelId}/converse (JSON) and /converse-stream (event stream).

Every request is signed with SigV4 for service `bedrock` in the provider's region; the model id is
percent-encoded once in the URL (ARNs and inference profiles hold `:` and `/`), and signed as sent.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, aclosing
from urllib.parse import quote

import aiohttp
import msgspec

from polyroute.catalog.presets import BEDROCK_DEFAULT_REGION
from polyroute.catalog.types import EndpointSpec, ProviderSpec
from polyroute.domain.chat import ChatRequest, Chunk, Completion
from polyroute.domain.secret import Secret
from polyroute.providers import upstream_http
from polyroute.providers.bedrock.decode import StreamTranslator, decode_converse, stream_exception
from polyroute.providers.bedrock.encode import encode_request
from polyroute.providers.bedrock.eventstream import iter_frames
from polyroute.providers.bedrock.signing import credentials_from, sign
from polyroute.providers.chat_input import reasoning_of
from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.providers.http_errors import error_from_response
from polyroute.providers.media import inline_remote_images
from polyroute.providers.registry import ProviderContext

_REGION_IN_URL = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com")


def region_of(spec: ProviderSpec) -> str:
    if spec.options.get("region"):
        return spec.options["region"]
    match = _REGION_IN_URL.search(spec.base_url)
    return match.group(1) if match else BEDROCK_DEFAULT_REGION


async def bedrock_error(response: aiohttp.ClientResponse, secret: Secret | None) -> UpstreamError:
    """The generic error; the raw text names the exception (`x-amzn-ErrorType`) when the body does not."""
    error = await error_from_response(response, secret)
    kind = response.headers.get("x-amzn-ErrorType", "").split(":", 1)[0]
    if kind and error.raw is not None and kind not in error.raw:
        error.raw = f"{kind}: {error.raw}"
    return error


class BedrockProvider:
    def __init__(self, spec: ProviderSpec, ctx: ProviderContext) -> None:
        self.spec = spec
        self._session = ctx.session
        self._timeouts = ctx.timeouts
        self._base = spec.base_url.rstrip("/")
        self._region = region_of(spec)
        self._credentials = credentials_from(spec.api_key) if spec.api_key else None
        self._allow_private_images = spec.options.get("fetch_private_images") == "true"

    def _post(
        self, request: ChatRequest, endpoint: EndpointSpec, body: bytes, *, stream: bool
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        action = "converse-stream" if stream else "converse"
        url = f"{self._base}/model/{quote(endpoint.upstream_id, safe='')}/{action}"
        accept = "application/vnd.amazon.eventstream" if stream else "application/json"
        headers = {"Content-Type": "application/json", "Accept": accept, **self.spec.headers}
        if self._credentials is None:
            raise UpstreamError(FailureKind.HTTP, "no AWS credentials configured", status=401)
        signed = sign(url, body, headers, self._credentials, self._region)
        return upstream_http.post(
            self._session, url, body, signed, timeouts=self._timeouts, secret=self.spec.api_key, on_error=bedrock_error
        )

    async def _body(self, request: ChatRequest, endpoint: EndpointSpec) -> bytes:
        messages = await inline_remote_images(
            request.messages, self._session, self._timeouts, allow_private=self._allow_private_images
        )
        if messages is not request.messages:
            request = dataclasses.replace(request, messages=messages)
        return msgspec.json.encode(encode_request(request, endpoint))

    async def complete(self, request: ChatRequest, endpoint: EndpointSpec) -> Completion:
        body = await self._body(request, endpoint)
        async with self._post(request, endpoint, body, stream=False) as response:
            parsed = await upstream_http.read_json(response, self._timeouts)
        reasoning = reasoning_of(request.params)
        return decode_converse(parsed, exclude_reasoning=reasoning is not None and reasoning.exclude)

    async def stream(self, request: ChatRequest, endpoint: EndpointSpec) -> AsyncGenerator[Chunk, None]:
        body = await self._body(request, endpoint)
        reasoning = reasoning_of(request.params)
        translator = StreamTranslator(exclude_reasoning=reasoning is not None and reasoning.exclude)
        async with self._post(request, endpoint, body, stream=True) as response:
            frames = iter_frames(response, first_byte_s=self._timeouts.first_byte_s, idle_s=self._timeouts.idle_s)
            async with aclosing(frames):  # a `return` inside the loop leaves it to the GC otherwise
                async for message_type, kind, payload in frames:
                    if message_type in ("exception", "error"):
                        raise stream_exception(kind, payload)
                    for chunk in translator.feed(kind, payload):
                        yield chunk
                    if translator.finished:
                        return
            if not translator.stopped:
                raise UpstreamError(FailureKind.PROTOCOL, "upstream stream ended before messageStop")

    async def aclose(self) -> None:
        return None
