"""Turning an upstream HTTP error response into an UpstreamError, with secrets scrubbed."""

from __future__ import annotations

import aiohttp

from polyroute.domain.secret import Secret
from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.providers.lean_http import ConnectFailed, LeanResponse, ProtocolBroken

MAX_RAW_ERROR_CHARS = 2000


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # HTTP-date form: rare from LLM APIs; treated as absent
    return max(0.0, seconds)


def scrub(text: str, secret: Secret | None) -> str:
    """Remove our upstream key from anything the upstream echoes back."""
    if secret:
        value = secret.reveal()
        if value and value in text:
            text = text.replace(value, "[redacted]")
    return text


async def error_from_response(response: aiohttp.ClientResponse, secret: Secret | None) -> UpstreamError:
    try:
        body = await response.content.read(MAX_RAW_ERROR_CHARS * 4)
        raw = body.decode("utf-8", "replace")[:MAX_RAW_ERROR_CHARS]
    except (aiohttp.ClientError, ConnectionError, TimeoutError):
        raw = ""
    return UpstreamError(
        FailureKind.HTTP,
        f"upstream answered HTTP {response.status}",
        status=response.status,
        raw=scrub(raw, secret),
        retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
    )


async def error_from_lean_response(response: LeanResponse, secret: Secret | None) -> UpstreamError:
    """The same as `error_from_response`, for the lean client's response."""
    try:
        body = await response.read_up_to(MAX_RAW_ERROR_CHARS * 4)
        raw = body.decode("utf-8", "replace")[:MAX_RAW_ERROR_CHARS]
    except (ProtocolBroken, ConnectFailed, TimeoutError):
        raw = ""
    return UpstreamError(
        FailureKind.HTTP,
        f"upstream answered HTTP {response.status}",
        status=response.status,
        raw=scrub(raw, secret),
        retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
    )
