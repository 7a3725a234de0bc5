"""I/O for Anthropic's Messages API: POST {base_url}/v1/messages, JSON or SSE."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, aclosing

import aiohttp
import msgspec

from polyroute.catalog.types import EndpointSpec, ProviderSpec
from polyroute.domain.chat import ChatRequest, Chunk, Completion
from polyroute.providers import upstream_http
from polyroute.providers.anthropic.decode import decode_message
from polyroute.providers.anthropic.encode import encode_request
from polyroute.providers.anthropic.stream import StreamTranslator
from polyroute.providers.chat_input import reasoning_of
from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.providers.registry import ProviderContext
from polyroute.providers.sse import iter_sse_data

ANTHROPIC_VERSION = "2023-06-01"  # the response shapes we decode; `options.anthropic_version` overrides


def messages_url(base_url: str) -> str:
    """`https://api.anthropic.com` and `https://host/v1` both work as a base URL."""
    base = base_url.rstrip("/")
    return base + ("/messages" if base.endswith("/v1") else "/v1/messages")


def _exclude_reasoning(request: ChatRequest) -> bool:
    reasoning = reasoning_of(request.params)
    return reasoning is not None and reasoning.exclude


class AnthropicProvider:
    def __init__(self, spec: ProviderSpec, ctx: ProviderContext) -> None:
        self.spec = spec
        self._session = ctx.session
        self._timeouts = ctx.timeouts
        self._url = messages_url(spec.base_url)
        version = spec.options.get("anthropic_version") or ANTHROPIC_VERSION
        headers = {"Content-Type": "application/json", "anthropic-version": version, **spec.headers}
        if spec.api_key:
            headers["x-api-key"] = spec.api_key.reveal()
        self._headers = headers

    def _post(self, body: dict[str, object], *, stream: bool) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        headers = {**self._headers, "Accept": "text/event-stream" if stream else "application/json"}
        return upstream_http.post(
            self._session,
            self._url,
            msgspec.json.encode(body),
            headers,
            timeouts=self._timeouts,
            secret=self.spec.api_key,
        )

    async def complete(self, request: ChatRequest, endpoint: EndpointSpec) -> Completion:
        body = encode_request(request, endpoint, stream=False)
        async with self._post(body, stream=False) as response:
            parsed = await upstream_http.read_json(response, self._timeouts)
        return decode_message(parsed, exclude_reasoning=_exclude_reasoning(request))

    async def stream(self, request: ChatRequest, endpoint: EndpointSpec) -> AsyncGenerator[Chunk, None]:
        body = encode_request(request, endpoint, stream=True)
        translator = StreamTranslator(exclude_reasoning=_exclude_reasoning(request))
        async with self._post(body, stream=True) as response:
            # aclosing: a `return` inside this loop leaves the inner generator to the GC otherwise.
            events = iter_sse_data(response, first_byte_s=self._timeouts.first_byte_s, idle_s=self._timeouts.idle_s)
            async with aclosing(events):
                async for data in events:
                    for chunk in translator.feed(upstream_http.decode_event(data, "stream event")):
                        yield chunk
                    if translator.finished:
                        return
            raise UpstreamError(FailureKind.PROTOCOL, "upstream stream ended before message_stop")

    async def aclose(self) -> None:
        return None
