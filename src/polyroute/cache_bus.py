"""Cross-process cache invalidation over Redis pub/sub.

A process that changes something other processes cache (a key revoked, disabled or edited)
publishes `<topic>:<id>`; every process, the sender included, runs the handler registered for the
topic. Delivery is best effort: while Redis is unreachable messages are lost, and the caches'
own short TTLs (1 s for API keys) bound how long a stale entry can live. The listener reconnects by
itself, so Redis coming back needs no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Handler = Callable[[str], None]


class CacheBus:
    def __init__(self, url: str, channel: str = "polyroute:invalidate", timeout_s: float = 0.5) -> None:
        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        self._listen_client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout_s)
        self._channel = channel
        self._handlers: dict[str, Handler] = {}
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()

    def on(self, topic: str, handler: Handler) -> None:
        self._handlers[topic] = handler

    async def start(self, wait_s: float = 2.0) -> None:
        self._task = asyncio.create_task(self._listen(), name="cache-bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), wait_s)  # a down Redis must not block start-up

    def publish(self, topic: str, ident: str) -> None:
        """Fire and forget; a failure is logged and left to the TTLs."""
        task = asyncio.get_running_loop().create_task(self._send(f"{topic}:{ident}"))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, message: str) -> None:
        try:
            await self._client.publish(self._channel, message)
        except (RedisError, OSError) as exc:
            log.warning("cache invalidation not published (%s); other processes catch up by TTL", exc)

    async def _listen(self) -> None:
        delay_s = 0.1
        while True:
            try:
                async with self._listen_client.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    self.connected.set()
                    delay_s = 0.1
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.connected.is_set():
                    log.warning("cache bus disconnected (%s); reconnecting", exc)
                self.connected.clear()
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)

    def _dispatch(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        topic, _, ident = text.partition(":")
        handler = self._handlers.get(topic)
        if handler is not None:
            handler(ident)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sends:
            await asyncio.gather(*self._sends, return_exceptions=True)
        await self._client.aclose()
        await self._listen_client.aclose()
