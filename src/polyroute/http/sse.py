"""A raw ASGI Server-Sent-Events response that closes its source as soon as the client leaves.

Starlette's StreamingResponse would leave an abandoned async generator to the garbage
collector; here the source is closed explicitly so the upstream connection drops at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from starlette.types import Receive, Scope, Send

KEEPALIVE_COMMENT = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"


class SSEResponse:
    def __init__(self, source: AsyncGenerator[bytes, None], headers: dict[str, str] | None = None) -> None:
        self._source = source
        raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        for name, value in (headers or {}).items():
            raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        self._headers = raw_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sender = asyncio.current_task()
        assert sender is not None
        watcher = asyncio.create_task(self._watch_disconnect(receive, sender))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            async for piece in self._source:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
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

    @staticmethod
    async def _watch_disconnect(receive: Receive, sender: asyncio.Task[object]) -> bool:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                sender.cancel()
                return True


def _disconnected(watcher: asyncio.Task[bool]) -> bool:
    return not watcher.cancelled() and watcher.exception() is None and watcher.result()
