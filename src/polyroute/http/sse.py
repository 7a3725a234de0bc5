"""A raw ASGI Server-Sent-Events response that closes its source as soon as the client leaves.

Starlette's StreamingResponse would leave an abandoned async generator to the garbage
collector; here the source is closed explicitly so the upstream connection drops at once.

Pieces the source has ready at the same moment (say, the events of one upstream network read)
go out in one write: each write is a system call and, on the wire, a packet. A piece is never
held back waiting for a later one: as soon as the source would have to wait, what is pending is
sent. The source yields `FLUSH` to send at once what it has yielded so far (the first token).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from starlette.types import Receive, Scope, Send

from polyroute.http.ready_step import Pending, step
from polyroute.http.responses import encode_headers

KEEPALIVE_COMMENT = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"
FLUSH = b""  # yielded by a source: send what is pending now
MAX_PENDING_BYTES = 64 * 1024


class SSEResponse:
    def __init__(self, source: AsyncGenerator[bytes, None], headers: dict[str, str] | None = None) -> None:
        self._source = source
        self._headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            *encode_headers(headers),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sender = asyncio.current_task()
        assert sender is not None
        watcher = asyncio.create_task(self._watch_disconnect(receive, sender))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            await self._relay(send)
        except asyncio.CancelledError:
            # Cancelled by our watcher because the client left: stop quietly; anything else
            # (server shutdown) propagates. Either way the finally below closes the upstream.
            if not (watcher.done() and _disconnected(watcher)):
                raise
            sender.uncancel()
        except OSError:
            pass  # the client's socket is gone
        finally:
            watcher.cancel()
            await self._source.aclose()

    async def _relay(self, send: Send) -> None:
        pending: list[bytes] = []
        pending_bytes = 0
        source = self._source
        while True:
            try:
                got = step(source.asend(None))  # the piece, if the source has it ready without waiting
                if isinstance(got, Pending):
                    if pending:  # the source must wait: what it gave so far goes out now
                        await _flush_before(got, send, b"".join(pending))
                        pending, pending_bytes = [], 0
                    got = await got
            except StopAsyncIteration:
                break
            piece = got
            if piece:
                pending.append(piece)
                pending_bytes += len(piece)
                if pending_bytes < MAX_PENDING_BYTES:
                    continue
            if pending:
                await send({"type": "http.response.body", "body": b"".join(pending), "more_body": True})
                pending, pending_bytes = [], 0
        await send({"type": "http.response.body", "body": b"".join(pending), "more_body": False})

    @staticmethod
    async def _watch_disconnect(receive: Receive, sender: asyncio.Task[object]) -> bool:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                sender.cancel()
                return True


async def _flush_before(rest: Pending[bytes], send: Send, body: bytes) -> None:
    """Send `body` while the source waits; if sending fails (client gone), cancel the source's half-run
    step first, so it is left at a clean point that `aclose()` can close."""
    try:
        await send({"type": "http.response.body", "body": body, "more_body": True})
    except BaseException:
        await rest.cancel()
        raise


def _disconnected(watcher: asyncio.Task[bool]) -> bool:
    return not watcher.cancelled() and watcher.exception() is None and watcher.result()
