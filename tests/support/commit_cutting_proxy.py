"""A loopback TCP proxy in front of PostgreSQL that lets a COMMIT reach the server and then resets the
connection before the server's reply comes back: the transaction is committed, and the client sees
only a dead connection. How the degraded-mode tests lose a COMMIT's outcome on purpose.

It reads the client's bytes for asyncpg's COMMIT (a simple-protocol Query message, `COMMIT;`); the
server must not use TLS (the test server has `ssl = off`). `cut_every(n)` cuts every n-th COMMIT seen
from then on, `cut_every(0)` stops cutting.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from typing import Self

_COMMIT = b"Q" + struct.pack("!i", 4 + len(b"COMMIT;\x00")) + b"COMMIT;\x00"
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


class _Pair:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.commit_doomed = False  # the reply to the COMMIT in flight is never delivered

    def reset(self) -> None:
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                sock.shutdown(socket.SHUT_RDWR)  # wakes the other pipe thread blocked in recv()
            with contextlib.suppress(OSError):
                sock.close()


class CommitCuttingProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.commits_seen = 0
        self.commits_cut = 0
        self._every = 0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._pairs: set[_Pair] = set()

    def cut_every(self, n: int) -> None:
        with self._lock:
            self._every = n

    def start(self) -> Self:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(256)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            pair = _Pair(client, server)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._to_server, args=(pair,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(pair,), daemon=True).start()

    def _to_server(self, pair: _Pair) -> None:
        try:
            while data := pair.client.recv(65536):
                if _COMMIT in data:
                    with self._lock:
                        self.commits_seen += 1
                        if self._every and self.commits_seen % self._every == 0:
                            pair.commit_doomed = True  # set before the COMMIT can reach the server
                pair.server.sendall(data)
        except OSError:
            pass
        self._end(pair)

    def _to_client(self, pair: _Pair) -> None:
        try:
            while data := pair.server.recv(65536):
                if pair.commit_doomed:  # the server has committed: its reply is lost with the connection
                    with self._lock:
                        self.commits_cut += 1
                    break
                pair.client.sendall(data)
        except OSError:
            pass
        self._end(pair)

    def _end(self, pair: _Pair) -> None:
        with self._lock:
            self._pairs.discard(pair)
        pair.reset()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            pair.reset()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
