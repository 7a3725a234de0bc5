"""One POST to an upstream with our timeout rules: used by the Anthropic, Gemini and Bedrock adapters.

`post` yields the response once its headers arrived with a 2xx status (an error status becomes an
`UpstreamError` through the dialect's `on_error`); `read_json` reads a whole JSON body in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from polyroute.domain.secret import Secret
from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.providers.http_errors import error_from_response
from polyroute.settings import Timeouts

ErrorDecoder = Callable[[aiohttp.ClientResponse, Secret | None], Awaitable[UpstreamError]]


@asynccontextmanager
async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeouts: Timeouts,
    secret: Secret | None,
    on_error: ErrorDecoder = error_from_response,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """`url` is sent exactly as given (already percent-encoded), so a signature over it stays valid."""
    try:
        async with asyncio.timeout(timeouts.first_byte_s):
            response = await session.post(URL(url, encoded=True), data=body, headers=dict(headers))
    except TimeoutError:
        raise UpstreamError(FailureKind.TIMEOUT, "upstream did not answer in time") from None
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise UpstreamError(FailureKind.CONNECT, f"cannot reach upstream: {type(exc).__name__}") from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(FailureKind.PROTOCOL, f"upstream request failed: {type(exc).__name__}") from None
    try:
        if response.status >= 400:
            raise await on_error(response, secret)
        yield response
    finally:
        # No-op once the body was read to the end (the connection goes back to the pool); otherwise
        # (client gone, error, early close) it drops the connection so the upstream stops generating.
        response.close()


async def read_json(response: aiohttp.ClientResponse, timeouts: Timeouts) -> Any:
    try:
        async with asyncio.timeout(timeouts.first_byte_s):
            raw = await response.read()
    except TimeoutError:
        raise UpstreamError(FailureKind.TIMEOUT, "upstream body did not arrive in time") from None
    except (aiohttp.ClientError, ConnectionError) as exc:
        raise UpstreamError(FailureKind.PROTOCOL, f"upstream body broke: {type(exc).__name__}") from None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise UpstreamError(FailureKind.PROTOCOL, "upstream returned invalid JSON") from None


def decode_event(data: bytes, what: str) -> Any:
    """One stream event's JSON payload; garbage is a protocol failure."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        raise UpstreamError(FailureKind.PROTOCOL, f"upstream sent an invalid {what}") from None
