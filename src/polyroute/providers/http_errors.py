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
    except (aiohttp.ClientError, ConnectionError, TimeoutError):
        body = b""
    return _http_error(response.status, body, response.headers.get("Retry-After"), secret)


async def error_from_lean_response(response: LeanResponse, secret: Secret | None) -> UpstreamError:
    """The same as `error_from_response`, for the lean client's response."""
    try:
        body = await response.read_up_to(MAX_RAW_ERROR_CHARS * 4)
    except (ProtocolBroken, ConnectFailed, TimeoutError):
        body = b""
    return _http_error(response.status, body, response.headers.get("Retry-After"), secret)


def _http_error(status: int, body: bytes, retry_after: str | None, secret: Secret | None) -> UpstreamError:
    raw = body.decode("utf-8", "replace")[:MAX_RAW_ERROR_CHARS]
    return UpstreamError(
        FailureKind.HTTP,
        f"upstream answered HTTP {status}",
        status=status,
        raw=scrub(raw, secret),
        retry_after_s=parse_retry_after(retry_after),
    )
