"""A lean HTTP/1.1 client for POSTs to model APIs: a keep-alive pool per origin and httptools' parser.

aiohttp costs 180 to 250 µs of CPU per call to a local mock; the same exchange on a plain asyncio
protocol costs about 50 (ADR 0005). This client does only what an upstream model call needs: one
POST with a body in one write, the status and headers, then the body read whole or as it arrives
(Content-Length, chunked, or up to the close), gzip/deflate decoded. HTTPS through the default
SSL context. No redirects, cookies, proxies or retries: a connection that breaks before an answer is
a connect failure, which the relay retries by its own rules. A connection is reused only after its
response was read to the end with keep-alive; anything else closes it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

MAX_IDLE_PER_ORIGIN = 64
IDLE_KEEP_S = 15.0  # like aiohttp's keep-alive timeout: older idle connections are not reused
PAUSE_AT_BYTES = 256 * 1024  # stop reading from the socket while this much body is unread


class ConnectFailed(OSError):
    """No answer started: the connection could not be made, or broke before any response byte."""


class ProtocolBroken(Exception):
    """The response broke off or was not HTTP."""


class LeanHeaders:
    """Response headers, looked up case-insensitively (the last value of a repeated header wins)."""

    __slots__ = ("_values",)

    def __init__(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self._values = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in pairs}

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name.lower(), default)


class _Connection(asyncio.Protocol):
    def __init__(self, client: LeanClient, origin: tuple[str, str, int]) -> None:
        self._client = client
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.idle_since_s = 0.0
        self.closed = False
        self.generation = 0  # one per response on this connection
        self._loop = asyncio.get_running_loop()  # created in `_connect`; read once (issue #9)
        self._parser = httptools.HttpResponseParser(self)
        self._reset()

    def _reset(self) -> None:
        self.generation += 1
        self._header_pairs: list[tuple[bytes, bytes]] = []
        self._head: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._body: deque[bytes] = deque()
        self._body_bytes = 0
        self._paused = False
        self._complete = False
        self._error: Exception | None = None
        self._received = False
        self._decoder: zlib._Decompress | None = None
        self.status = 0
        self.headers = LeanHeaders([])
        self.keep_alive = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolBroken(f"upstream sent invalid HTTP: {type(exc).__name__}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._complete or self._error is not None:
            return
        if self._head is not None and self._head.done() and self._ends_at_close():
            self._finish()  # a body delimited by the close ends here
        elif self._head is not None and not self._head.done():
            self._fail(ConnectFailed("connection closed before a response") if not self._received else
                       ProtocolBroken("connection closed inside the response headers"))  # fmt: skip
        else:
            self._fail(ProtocolBroken("connection closed before the response body ended"))

    def pause_writing(self) -> None:  # one small request per connection: nothing to throttle
        pass

    def resume_writing(self) -> None:
        pass

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_pairs.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if self.status < 200:  # 1xx: wait for the final response
            self._header_pairs = []
            return
        self.keep_alive = self._parser.should_keep_alive()
        self.headers = LeanHeaders(self._header_pairs)
        encoding = (self.headers.get("content-encoding") or "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        elif encoding not in ("", "identity"):
            self._fail(ProtocolBroken(f"upstream used an unsupported content encoding: {encoding[:20]}"))
            return
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error:
                self._fail(ProtocolBroken("upstream sent a body that does not decompress"))
                return
        if body:
            self._body.append(body)
            self._body_bytes += len(body)
            if self._body_bytes > PAUSE_AT_BYTES and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        if self.status >= 200:
            self._finish()

    # the response side
    def _ends_at_close(self) -> bool:
        return self.headers.get("content-length") is None and "chunked" not in (
            self.headers.get("transfer-encoding") or ""
        )

    def _finish(self) -> None:
        if self._decoder is not None:
            rest = self._decoder.flush()
            if rest:
                self._body.append(rest)
        self._complete = True
        self._wake()

    def _fail(self, error: Exception) -> None:
        if self._error is None and not self._complete:
            self._error = error
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
            self._head.exception()  # retrieved here; the caller raises it from `result()`
        self._wake()
        self.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes, timeout_s: float | None = None) -> None:
        """Send the request; return once the final status and headers arrived. TimeoutError when they
        have not within `timeout_s` (one timer on the head's future, not an `asyncio.timeout`)."""
        assert self.transport is not None
        head = self._head = self._loop.create_future()
        self.transport.write(request)
        if timeout_s is None:
            await head
            return
        timer = self._loop.call_later(timeout_s, _expire, head)
        try:
            await head
        finally:
            timer.cancel()

    async def read_some(self, timeout_s: float | None = None) -> bytes:
        """Whatever body arrived (waiting for some); b"" at the end. TimeoutError after waiting
        `timeout_s` for more. A timer exists only while waiting, not per call: most reads of a
        stream find data already there (cheaper than an `asyncio.timeout` per read; issue #9)."""
        while not self._body:
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            waiter = self._waiter = self._loop.create_future()
            timer = None if timeout_s is None else self._loop.call_later(timeout_s, _expire, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        piece = self._body.popleft() if len(self._body) == 1 else b"".join(self._drain())
        self._body_bytes -= len(piece)
        if self._paused and self._body_bytes <= PAUSE_AT_BYTES // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return piece

    def _drain(self) -> list[bytes]:
        pieces = list(self._body)
        self._body.clear()
        return pieces

    def end(self, generation: int) -> None:
        """The caller is done with response `generation`: back to the pool if it arrived whole
        with keep-alive (unread body is dropped), otherwise the connection is closed."""
        if generation != self.generation:
            return  # already ended
        if self._complete and self._error is None and self.keep_alive and not self.closed:
            self._reset()
            self._client.park(self)
        else:
            self.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class LeanResponse:
    """An upstream answer: `status`, `headers`, then `read()` (all) or `read_some()` (as it arrives)."""

    __slots__ = ("_connection", "_generation", "headers", "status")

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self._generation = connection.generation
        self.status = connection.status
        self.headers = connection.headers

    async def read_some(self, timeout_s: float | None = None) -> bytes:
        return await self._connection.read_some(timeout_s)

    async def read(self, timeout_s: float | None = None) -> bytes:
        """The whole body; TimeoutError when it has not all arrived within `timeout_s`."""
        pieces = []
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while piece := await self._connection.read_some(None if deadline is None else deadline - time.monotonic()):
            pieces.append(piece)
        self.close()
        return b"".join(pieces)

    async def read_up_to(self, limit: int) -> bytes:
        """At most about `limit` bytes of the body (an error body's start); the connection is then dropped."""
        pieces: list[bytes] = []
        size = 0
        while size < limit and (piece := await self._connection.read_some()):
            pieces.append(piece)
            size += len(piece)
        self.close()
        return b"".join(pieces)[:limit]

    def close(self) -> None:
        """Done with it: the connection goes back to the pool if the whole response arrived, else closes."""
        self._connection.end(self._generation)


class LeanClient:
    def __init__(self, connect_timeout_s: float, ssl_context: ssl.SSLContext | None = None) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._ssl = ssl_context  # the default context (system CAs, hostname checked) when None
        self._targets: dict[str, tuple[tuple[str, str, int], bytes]] = {}

    def park(self, connection: _Connection) -> None:
        idle = self._idle.setdefault(connection.origin, deque())
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
            return
        connection.idle_since_s = time.monotonic()
        idle.append(connection)

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float | None = None
    ) -> LeanResponse:
        """Send the POST; return once the response's status and headers arrived. TimeoutError when
        they have not within `timeout_s` (a new connection's connect counts against it too)."""
        origin, head = self._target(url)
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
            raise ProtocolBroken("a header name or value holds a line break")  # never sent: no header injection
        request = b"".join((head, lines.encode("latin-1"), b"Content-Length: %d\r\n\r\n" % len(body), body))
        connection = self._reuse(origin)
        if connection is None:
            if timeout_s is None:
                connection = await self._connect(origin)
            else:  # rare (the pool keeps connections): the plain way
                started = time.monotonic()
                async with asyncio.timeout(timeout_s):
                    connection = await self._connect(origin)
                timeout_s = max(0.0, timeout_s - (time.monotonic() - started))
        try:
            await connection.exchange(request, timeout_s)
        except BaseException:
            connection.close()
            raise
        return LeanResponse(connection)

    def _target(self, url: str) -> tuple[tuple[str, str, int], bytes]:
        found = self._targets.get(url)
        if found is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConnectFailed(f"unsupported upstream URL scheme: {parts.scheme}")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            host = parts.hostname
            host_header = f"[{host}]" if ":" in host else host
            if parts.port is not None:
                host_header += f":{parts.port}"
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            head = f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\n".encode("latin-1")
            found = self._targets[url] = ((parts.scheme, host, port), head)
        return found

    def _reuse(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to have been closed
            if not connection.closed and now - connection.idle_since_s < IDLE_KEEP_S:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self, origin),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context else None,
                )
        except TimeoutError:
            raise ConnectFailed(f"connect timed out after {self._connect_timeout_s:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"cannot connect: {type(exc).__name__}") from None
        return protocol

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
