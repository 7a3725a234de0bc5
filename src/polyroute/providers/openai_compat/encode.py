"""Pure: a ChatRequest -> the JSON body an OpenAI-compatible upstream expects."""

from __future__ import annotations

from typing import Any

from polyroute.catalog.types import EndpointSpec
from polyroute.domain.chat import ChatRequest

# Parameters every OpenAI-compatible host understands; forwarded even when an endpoint's
# supported_parameters list is silent about them.
_ALWAYS_FORWARD = frozenset({"stop", "user"})


def encode_request(request: ChatRequest, endpoint: EndpointSpec, *, stream: bool) -> dict[str, Any]:
    """Forward the client's parameters that the endpoint supports; drop the rest, as OpenRouter does."""
    supported = endpoint.supported_parameters
    body: dict[str, Any] = {"model": endpoint.upstream_id, "messages": request.messages}
    for name, value in request.params.items():
        if not supported or name in supported or name in _ALWAYS_FORWARD:
            body[name] = value
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body
