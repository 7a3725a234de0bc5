"""Sequential latency at one connection: a minimal keep-alive HTTP/1.1 client timed with perf_counter_ns.

A raw socket client (no library between the timer and the wire) sends a fixed request and reads the
answer (content-length, chunked or close-delimited). For SSE answers it also notes the time to the
first content token: the first received byte range holding `"content":"` followed by a non-quote.
Direct-to-mock and through-the-gateway requests alternate in blocks, so drift from other work on
the machine hits both alike; the added latency is the difference of the percentiles.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

_FIRST_CONTENT = re.compile(rb'"content":"[^"]')


@dataclass
class Sample:
    total_ns: list[int] = field(default_factory=list)
    ttft_ns: list[int] = field(default_factory=list)
    errors: int = 0


class Connection:
    """One keep-alive connection to 127.0.0.1:port; reconnects when the server closes it."""

    def __init__(self, port: int, path: str, body: bytes, auth: str | None, timeout_s: float = 30.0) -> None:
        self.port = port
        self.timeout_s = timeout_s
        headers = [
            f"POST {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        if auth:
            headers.append(f"Authorization: Bearer {auth}")
        self.request = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def call(self) -> tuple[int, int, int | None, bytes]:
        """Send the request; return (status, total_ns, first_content_ns or None, body)."""
        if self.sock is None:
            self.sock = self._connect()
        sock = self.sock
        start = time.perf_counter_ns()
        sock.sendall(self.request)
        reader = _Reader(sock)
        status, headers = reader.head()
        first: int | None = None
        body = bytearray()
        for piece in reader.body(headers):
            if first is None and _FIRST_CONTENT.search(piece if not body else bytes(body[-64:]) + piece):
                first = time.perf_counter_ns() - start
            body += piece
        total = time.perf_counter_ns() - start
        if reader.closed or headers.get("connection", "").lower() == "close":
            self.close()
        return status, total, first, bytes(body)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.closed = False

    def _more(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
        return data

    def head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buf:
            data = self._more()
            if not data:
                raise ConnectionError("closed before the response head")
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split(" ")[1]), headers

    def body(self, headers: dict[str, str]) -> Iterator[bytes]:
        """Yield body pieces as they arrive (de-chunked)."""
        if "content-length" in headers:
            left = int(headers["content-length"])
            while left > 0:
                if not self.buf:
                    self.buf = self._more()
                    if not self.buf:
                        raise ConnectionError("closed mid-body")
                piece, self.buf = self.buf[:left], self.buf[left:]
                left -= len(piece)
                yield piece
        elif "chunked" in headers.get("transfer-encoding", ""):
            yield from self._chunks()
        else:  # close-delimited
            if self.buf:
                yield self.buf
            while data := self._more():
                yield data

    def _chunks(self) -> Iterator[bytes]:
        while True:
            while b"\r\n" not in self.buf:
                self.buf += self._need()
            size_line, self.buf = self.buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(self.buf) < size + 2:
                self.buf += self._need()
            piece, self.buf = self.buf[:size], self.buf[size + 2 :]
            if size == 0:
                return
            yield piece

    def _need(self) -> bytes:
        data = self._more()
        if not data:
            raise ConnectionError("closed mid-body")
        return data


def measure(
    conns: dict[str, Connection], count: int, *, max_s: float, block: int = 50, warmup: int = 30
) -> dict[str, Sample]:
    """`count` requests per connection, alternating between connections every `block` requests.

    Stops early (at a block boundary, so every connection has the same count) after `max_s`."""
    samples = {name: Sample() for name in conns}
    for conn in conns.values():
        for _ in range(warmup):
            _one(conn, Sample())
    deadline = time.monotonic() + max_s
    done = 0
    while done < count and time.monotonic() < deadline:
        n = min(block, count - done)
        for name, conn in conns.items():
            for _ in range(n):
                _one(conn, samples[name])
        done += n
    for conn in conns.values():
        conn.close()
    return samples


def _one(conn: Connection, sample: Sample) -> None:
    try:
        status, total, first, _ = conn.call()
    except (OSError, ValueError):
        conn.close()
        sample.errors += 1
        return
    if status != 200:
        sample.errors += 1
        return
    sample.total_ns.append(total)
    if first is not None:
        sample.ttft_ns.append(first)


def percentile_ms(values_ns: list[int], pct: float) -> float | None:
    if not values_ns:
        return None
    ordered = sorted(values_ns)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index] / 1e6
