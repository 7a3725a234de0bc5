"""uvicorn's httptools protocol, with a response's head and its first body write sent as one.

uvicorn writes the status line and headers on `http.response.start` and the body on the first
`http.response.body`: two system calls and, on the wire, two packets for every JSON response (its
`send` was about 7 % of a chat request's CPU under load, issue #9). The transport this protocol
hands to uvicorn holds a write that is a complete response head until the next write (the body,
which normally follows in the same step of the same task) and sends the two joined.

A head that nothing follows within the same loop iteration (a stream still waiting for its first
event) goes out by itself on the next iteration, so nothing waits longer than one loop pass. The
order of bytes never changes; telling a head from a body is only a matter of speed, not of
correctness (a body that looked like a head would just be joined to the next write).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD_START = b"HTTP/1.1 "
_HEAD_END = b"\r\n\r\n"


class HeadHoldingTransport:
    """Delegates to a real transport; holds a response head until the next write (or one loop pass)."""

    __slots__ = ("_flush_handle", "_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None
        self._flush_handle: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if self._flush_handle is not None:
                self._flush_handle.cancel()
                self._flush_handle = None
            self._transport.write(head + data)
        elif data.startswith(_HEAD_START) and data.endswith(_HEAD_END):
            self._head = data
            self._flush_handle = self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def flush(self) -> None:
        """Send a held head now."""
        self._flush_handle = None
        head, self._head = self._head, None
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._head = None
        self._transport.abort()

    # The rest of asyncio.Transport, spelled out: a class with `__getattr__` sends every attribute
    # read of its instances (its own slots included) through a slower hook, and each name it lacks
    # through a formatted-then-discarded AttributeError: about 45 such reads per request (issue #9).
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + (len(self._head) if self._head is not None else 0)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()


class HttpProtocol(HttpToolsProtocol):
    """`polyroute serve`'s HTTP/1.1 protocol: uvicorn's httptools one over a head-holding transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        holding = HeadHoldingTransport(transport, self.loop)
        super().connection_made(holding)  # type: ignore[arg-type]
