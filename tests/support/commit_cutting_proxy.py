"""A loopback TCP proxy in front of PostgreSQL that lets a COMMIT reach the server and then resets the
connection before the server's reply comes back: the transaction is committed, and the client sees
only a dead connection. How the degraded-mode tests lose a COMMIT's outcome on purpose.

It reads the client's bytes for asyncpg's COMMIT (a simple-protocol Query message, `COMMIT;`); the
server must not use TLS (the test server has `ssl = off`). `cut_every(n)` cuts every n-th COMMIT seen
from then on, `cut_every(0)` stops cutting.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Self

from tests.support.tcp_proxy import LoopbackProxy, reset_socket

_COMMIT = b"Q" + struct.pack("!i", 4 + len(b"COMMIT;\x00")) + b"COMMIT;\x00"


class _Pair:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.commit_doomed = False  # the reply to the COMMIT in flight is never delivered

    def reset(self) -> None:
        reset_socket(self.client)
        reset_socket(self.server)


class CommitCuttingProxy(LoopbackProxy):
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        super().__init__(target_port, target_host)
        self.commits_seen = 0
        self.commits_cut = 0
        self._every = 0
        self._pairs: set[_Pair] = set()

    def cut_every(self, n: int) -> None:
        with self._lock:
            self._every = n

    def _serve(self, client: socket.socket, upstream: socket.socket) -> None:
        pair = _Pair(client, upstream)
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
        self._stop_listening()
        with self._lock:
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            pair.reset()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
