"""Reading Server-Sent Events from an upstream response, one `data:` payload at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp

from polyroute.providers.errors import FailureKind, UpstreamError


async def iter_sse_data(
    response: aiohttp.ClientResponse, *, first_byte_s: float, idle_s: float
) -> AsyncIterator[bytes]:
    """Yield each event's data (multi-line data joined by newlines); comments are skipped.

    The first event may take `first_byte_s` (model thinking time); after that a silence longer
    than `idle_s` is a stall. Ends cleanly at EOF; the caller decides if EOF was premature.
    """
    content = response.content
    data: list[bytes] = []
    timeout_s = first_byte_s
    while True:
        try:
            async with asyncio.timeout(timeout_s):
                line = await content.readline()
        except TimeoutError:
            raise UpstreamError(FailureKind.TIMEOUT, f"upstream sent nothing for {timeout_s:g} s") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamError(FailureKind.PROTOCOL, f"upstream stream broke: {type(exc).__name__}") from None
        if not line:
            if data:
                yield b"\n".join(data)
            return
        line = line.rstrip(b"\r\n")
        if not line:
            if data:
                yield b"\n".join(data)
                data = []
                timeout_s = idle_s
            continue
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        # `event:`, `id:`, `retry:` and `:` comment lines carry nothing we need here.
