"""I/O for Gemini: `:generateContent` (JSON) and `:streamGenerateContent?alt=sse`.

Google AI Studio (the default): `{base_url}/v1beta/models/{model}:...` with `x-goog-api-key`.
Vertex AI (`options.api = "vertex"`): with `options.project` (and `options.location`, default
`global`) `{base_url}/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:...` and the key
sent as a Bearer access token; without a project, Vertex express mode
`{base_url}/v1/publishers/google/models/{model}:...` with the key as `x-goog-api-key`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, aclosing
from urllib.parse import quote

import aiohttp
import msgspec

from polyroute.catalog.types import EndpointSpec, ProviderSpec
from polyroute.domain.chat import ChatRequest, Chunk, Completion
from polyroute.domain.secret import Secret
from polyroute.providers import upstream_http
from polyroute.providers.chat_input import reasoning_of
from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.providers.gemini.decode import decode_response
from polyroute.providers.gemini.encode import encode_request
from polyroute.providers.gemini.stream import StreamTranslator
from polyroute.providers.http_errors import error_from_response
from polyroute.providers.media import inline_remote_images
from polyroute.providers.registry import ProviderContext
from polyroute.providers.sse import iter_sse_data

_VERSION_SUFFIX = re.compile(r"/v1(beta\d*)?$")
_DELAY = re.compile(r"([\d.]+)s")


def model_url_prefix(spec: ProviderSpec) -> str:
    """Everything before `{model}:generateContent`."""
    base = spec.base_url.rstrip("/")
    if spec.options.get("api") == "vertex":
        base = base if _VERSION_SUFFIX.search(base) else base + "/v1"
        project = spec.options.get("project")
        if project:
            location = spec.options.get("location") or "global"
            return f"{base}/projects/{quote(project)}/locations/{quote(location)}/publishers/google/models/"
        return f"{base}/publishers/google/models/"
    return (base if _VERSION_SUFFIX.search(base) else base + "/v1beta") + "/models/"


async def gemini_error(response: aiohttp.ClientResponse, secret: Secret | None) -> UpstreamError:
    """The generic error, plus Google's `RetryInfo.retryDelay` ("30s") when there is no Retry-After."""
    error = await error_from_response(response, secret)
    if error.retry_after_s is None and error.raw:
        try:
            details = json.loads(error.raw).get("error", {}).get("details") or []
        except (ValueError, AttributeError):
            details = []
        for detail in details:
            match = _DELAY.fullmatch(str(detail.get("retryDelay", ""))) if isinstance(detail, dict) else None
            if match:
                error.retry_after_s = float(match.group(1))
    return error


class GeminiProvider:
    def __init__(self, spec: ProviderSpec, ctx: ProviderContext) -> None:
        self.spec = spec
        self._session = ctx.session
        self._timeouts = ctx.timeouts
        self._prefix = model_url_prefix(spec)
        self._allow_private_images = spec.options.get("fetch_private_images") == "true"
        headers = {"Content-Type": "application/json", **spec.headers}
        if spec.api_key:
            if spec.options.get("api") == "vertex" and spec.options.get("project"):
                headers["Authorization"] = f"Bearer {spec.api_key.reveal()}"
            else:
                headers["x-goog-api-key"] = spec.api_key.reveal()
        self._headers = headers

    def _url(self, endpoint: EndpointSpec, *, stream: bool) -> str:
        model = quote(endpoint.upstream_id.removeprefix("models/"), safe="")
        return self._prefix + model + (":streamGenerateContent?alt=sse" if stream else ":generateContent")

    async def _body(self, request: ChatRequest, endpoint: EndpointSpec) -> bytes:
        messages = await inline_remote_images(
            request.messages, self._session, self._timeouts, allow_private=self._allow_private_images
        )
        if messages is not request.messages:
            request = dataclasses.replace(request, messages=messages)
        return msgspec.json.encode(encode_request(request, endpoint))

    def _post(self, url: str, body: bytes) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        return upstream_http.post(
            self._session,
            url,
            body,
            self._headers,
            timeouts=self._timeouts,
            secret=self.spec.api_key,
            on_error=gemini_error,
        )

    async def complete(self, request: ChatRequest, endpoint: EndpointSpec) -> Completion:
        body = await self._body(request, endpoint)
        async with self._post(self._url(endpoint, stream=False), body) as response:
            parsed = await upstream_http.read_json(response, self._timeouts)
        reasoning = reasoning_of(request.params)
        return decode_response(parsed, exclude_reasoning=reasoning is not None and reasoning.exclude)

    async def stream(self, request: ChatRequest, endpoint: EndpointSpec) -> AsyncGenerator[Chunk, None]:
        body = await self._body(request, endpoint)
        reasoning = reasoning_of(request.params)
        translator = StreamTranslator(exclude_reasoning=reasoning is not None and reasoning.exclude)
        async with self._post(self._url(endpoint, stream=True), body) as response:
            # aclosing: a `return` inside this loop leaves the inner generator to the GC otherwise.
            events = iter_sse_data(response, first_byte_s=self._timeouts.first_byte_s, idle_s=self._timeouts.idle_s)
            async with aclosing(events):
                async for data in events:
                    for chunk in translator.feed(upstream_http.decode_event(data, "stream chunk")):
                        yield chunk
                    if translator.finished:
                        return
            raise UpstreamError(FailureKind.PROTOCOL, "upstream stream ended before a finish reason")

    async def aclose(self) -> None:
        return None
