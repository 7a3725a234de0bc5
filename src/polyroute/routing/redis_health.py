"""Endpoint health shared between gateway processes through a Redis stream.

Routing keeps reading the in-process `MemoryHealth` (the hot path stays synchronous and cheap).
`SharedHealth` wraps it: every attempt outcome is recorded locally at once and queued; a background
task appends the queue to one Redis stream as a single entry every `flush_s` (≤ 250 ms), and another
task reads the entries other processes appended (blocking XREAD) and merges their outcomes into the
local store, back-dated by their age, so one process's failures and ejections steer the others
within about a second and `/models/{a}/{s}/endpoints` shows every process's samples.

A process that starts replays the stream's recent entries (the stats window), so it does not begin
blind. Redis down: each process carries on with its own stats; the first error is logged once, the
reader reconnects by itself, no request ever waits on Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from polyroute.routing.health import STATS_WINDOW_S, EndpointKey, EndpointStats, HealthSnapshot, MemoryHealth

log = logging.getLogger(__name__)
_CLOSE_STEP_S = 2.0  # each step of aclose() at most

_MAX_PENDING = 10_000  # outcomes kept while Redis is slow; beyond it the oldest are dropped
_STREAM_MAXLEN = 20_000  # batches kept in Redis (approximate trim)
_REPLAY_BATCHES = 5_000  # most batches read back at start

# One outcome on the wire: [model, provider, wall time, ok, ttft_s, latency_s, tokens, retry_after_s]
Outcome = list[Any]


class SharedHealth:
    """A `HealthStore`: the local `MemoryHealth` decides, Redis carries outcomes between processes."""

    def __init__(
        self,
        local: MemoryHealth,
        url: str,
        stream_key: str,
        *,
        flush_s: float = 0.2,
        block_s: float = 1.0,
        timeout_s: float = 0.5,
        replay_s: float = STATS_WINDOW_S,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.local = local
        self.origin = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._key = stream_key
        self._flush_s = flush_s
        self._block_ms = int(block_s * 1000)
        self._replay_s = replay_s
        self._wall = wall
        self._writer = aioredis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        # The reader blocks up to block_s inside XREAD: its socket timeout must be longer.
        self._reader = aioredis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=block_s + 2.0)
        self._pending: deque[Outcome] = deque(maxlen=_MAX_PENDING)  # full: the oldest are dropped
        self._tasks: list[asyncio.Task[None]] = []
        self._failing = False  # Redis errors are logged once per outage
        self.merged = 0  # outcomes merged from other processes (for tests and /readyz)
        self.caught_up = asyncio.Event()  # set once the start-up replay is done

    # --- HealthStore: local first, then queued for the others --------------------------------------
    def record_success(
        self, key: EndpointKey, *, ttft_s: float | None, latency_s: float, completion_tokens: int
    ) -> None:
        self.local.record_success(key, ttft_s=ttft_s, latency_s=latency_s, completion_tokens=completion_tokens)
        self._queue([key[0], key[1], self._wall(), 1, ttft_s, latency_s, completion_tokens, None])

    def record_failure(self, key: EndpointKey, *, retry_after_s: float | None = None) -> None:
        self.local.record_failure(key, retry_after_s=retry_after_s)
        self._queue([key[0], key[1], self._wall(), 0, None, None, 0, retry_after_s])

    def snapshot(self, keys: Iterable[EndpointKey], *, window: bool = True) -> HealthSnapshot:
        return self.local.snapshot(keys, window=window)

    def claim_probe(self, key: EndpointKey) -> bool:
        return self.local.claim_probe(key)  # probes stay per process: each may test a recovered endpoint

    def release_probe(self, key: EndpointKey) -> None:
        self.local.release_probe(key)

    def all_stats(self) -> dict[EndpointKey, EndpointStats]:
        return self.local.all_stats()

    def _queue(self, outcome: Outcome) -> None:
        self._pending.append(outcome)

    # --- background tasks --------------------------------------------------------------------------
    async def start(self) -> None:
        """Starts the tasks; never waits for Redis (a down Redis must not block the start)."""
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="health-share-flush"),
            asyncio.create_task(self._read_loop(), name="health-share-read"),
        ]

    async def aclose(self) -> None:
        """Stop sharing; every step is bounded, so a Redis that misbehaves cannot hold up a shutdown
        (seen under load: a cancelled blocking XREAD that did not end, and the test waited 120 s)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=_CLOSE_STEP_S)
            if stuck:
                log.warning("endpoint-stats sharing did not stop within %.0f s; leaving it", _CLOSE_STEP_S)
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            # What the last requests saw still reaches the others.
            await asyncio.wait_for(self.flush(), _CLOSE_STEP_S)
        for client in (self._writer, self._reader):
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await asyncio.wait_for(client.aclose(), _CLOSE_STEP_S)

    async def flush(self) -> None:
        """Append the queued outcomes as one stream entry. Raises RedisError/OSError (batch kept)."""
        if not self._pending:
            return
        batch = list(self._pending)
        self._pending.clear()
        payload = json.dumps({"o": self.origin, "e": batch}, separators=(",", ":"))
        try:
            await self._writer.xadd(self._key, {"b": payload}, maxlen=_STREAM_MAXLEN, approximate=True)
        except BaseException:
            # Keep it for the next try, before what came since; beyond _MAX_PENDING the oldest go.
            self._pending = deque([*batch, *self._pending], maxlen=_MAX_PENDING)
            raise

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            if not self._pending:
                continue  # nothing sent: no news about Redis either way
            try:
                await self.flush()
                self._recovered()
            except (RedisError, OSError) as exc:
                self._failed(exc)

    async def _read_loop(self) -> None:
        last_id: str | None = None
        delay_s = 0.1
        while True:
            try:
                if last_id is None:
                    last_id = await self._replay()
                    self.caught_up.set()
                reply: Any = await self._reader.xread({self._key: last_id}, block=self._block_ms, count=500)
                for _stream, entries in reply or ():
                    for entry_id, fields in entries:
                        last_id = _text(entry_id)
                        self._merge(fields)
                self._recovered()
                delay_s = 0.1
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._failed(exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 2.0)

    async def _replay(self) -> str:
        """Merge the recent entries (newest `_REPLAY_BATCHES`); returns the id to read on from."""
        entries: Any = await self._reader.xrevrange(self._key, count=_REPLAY_BATCHES)
        for _entry_id, fields in reversed(entries):
            self._merge(fields, max_age_s=self._replay_s)
        return _text(entries[0][0]) if entries else "0-0"

    def _merge(self, fields: dict[Any, Any], max_age_s: float | None = None) -> None:
        try:
            batch = json.loads(fields.get(b"b") or fields.get("b") or b"{}")
            if batch.get("o") == self.origin:
                return
            now = self._wall()
            for model, provider, at, ok, ttft_s, latency_s, tokens, retry_after_s in batch.get("e", ()):
                ago_s = max(0.0, now - float(at))
                if max_age_s is not None and ago_s > max_age_s:
                    continue
                key = (str(model), str(provider))
                if ok:
                    self.local.record_success(
                        key, ttft_s=ttft_s, latency_s=float(latency_s), completion_tokens=int(tokens), ago_s=ago_s
                    )
                else:
                    self.local.record_failure(key, retry_after_s=retry_after_s, ago_s=ago_s)
                self.merged += 1
        except (ValueError, TypeError, AttributeError):
            log.warning("skipped a malformed endpoint-health entry in %s", self._key)

    def _failed(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            log.warning("endpoint stats not shared through Redis (%s); this process carries on with its own", exc)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("endpoint stats shared through Redis again")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
