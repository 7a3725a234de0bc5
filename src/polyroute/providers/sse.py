"""Reading Server-Sent Events from an upstream response, one `data:` payload at a time.

The body is read a network read at a time (whatever arrived), not a line at a time: a stream
that arrives in one packet costs one read and one timeout arm, not two of each per event (issue
#9: reading by line was about 9 µs per line, 0.4 ms of a 22-event stream).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import aiohttp

from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.providers.lean_http import ConnectFailed, LeanResponse, ProtocolBroken

MAX_LINE_BYTES = 8 * 1024 * 1024  # one `data:` line this long is a broken upstream, not a chunk


class SSEDataParser:
    """Incremental: bytes in (any split), complete events' data out.

    Lines end with LF or CRLF; multi-line data is joined by newlines; `event:`, `id:`, `retry:`
    and `:` comment lines carry nothing we need here.
    """

    __slots__ = ("_data", "_partial", "_partial_bytes")

    def __init__(self) -> None:
        self._data: list[bytes] = []  # the current event's data lines
        self._partial: list[bytes] = []  # the start of a line not ended yet
        self._partial_bytes = 0

    def feed(self, piece: bytes) -> list[bytes]:
        if b"\n" not in piece:
            self._keep(piece)
            return []
        if self._partial:
            piece = b"".join(self._partial) + piece
            self._partial.clear()
            self._partial_bytes = 0
        lines = piece.split(b"\n")
        rest = lines.pop()
        if rest:
            self._keep(rest)
        return self._lines(lines)

    def close(self) -> list[bytes]:
        """At EOF: a last line without its newline counts, and so does an event without its blank line."""
        lines = [b"".join(self._partial)] if self._partial else []
        self._partial.clear()
        events = self._lines(lines)
        if self._data:
            events.append(b"\n".join(self._data))
            self._data = []
        return events

    def _keep(self, piece: bytes) -> None:
        self._partial_bytes += len(piece)
        if self._partial_bytes > MAX_LINE_BYTES:
            raise UpstreamError(FailureKind.PROTOCOL, "upstream sent an over-long stream line")
        self._partial.append(piece)

    def _lines(self, lines: list[bytes]) -> list[bytes]:
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data = []
                continue
            if line.startswith(b"data:"):
                data.append(line[6:] if line.startswith(b"data: ") else line[5:])
        self._data = data
        return events


async def iter_sse_data(
    response: aiohttp.ClientResponse | LeanResponse, *, first_byte_s: float, idle_s: float
) -> AsyncGenerator[bytes, None]:
    """Yield each event's data (multi-line data joined by newlines); comments are skipped.

    The first event may take `first_byte_s` (model thinking time); after that a silence longer
    than `idle_s` is a stall. Ends cleanly at EOF; the caller decides if EOF was premature.
    """
    parser = SSEDataParser()
    timeout_s = first_byte_s
    while True:
        try:
            piece = await _read_piece(response, timeout_s)
        except TimeoutError:
            raise UpstreamError(FailureKind.TIMEOUT, f"upstream sent nothing for {timeout_s:g} s") from None
        except (aiohttp.ClientError, ConnectionError, ProtocolBroken, ConnectFailed) as exc:
            raise UpstreamError(FailureKind.PROTOCOL, f"upstream stream broke: {type(exc).__name__}") from None
        if not piece:
            for data in parser.close():
                yield data
            return
        events = parser.feed(piece)
        if events:
            timeout_s = idle_s
            for data in events:
                yield data


async def _read_piece(response: aiohttp.ClientResponse | LeanResponse, timeout_s: float) -> bytes:
    """What arrived next, waiting at most `timeout_s`. The lean client times its own wait (a timer only
    while it actually waits, not a timeout context per read: issue #9)."""
    if isinstance(response, LeanResponse):
        return await response.read_some(timeout_s)
    async with asyncio.timeout(timeout_s):
        return await response.content.readany()
