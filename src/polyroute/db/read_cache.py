"""A per-process read-through cache with a TTL, one read per entry at a time, and instant eviction.

Used for API keys, accounts' provider preferences and the ledger's view of an account's balance
for free requests (all in front of database reads, hence here in `db`): under load every request
of a key arrives within microseconds of the entry's expiry, and without single flight each of them
read the database (issue #9 measured 307 key reads in 12 s of one key's load on SQLite). Here:

- a fresh entry (younger than the TTL) answers at once; in the last quarter of its TTL, the first
  request also starts a read in the background (refresh ahead), so under steady traffic no request
  waits for a read at expiry (issue #9: one request in 20 waited for a key read under load);
- after it expires, the first request starts one read and waits for it; requests that arrive
  while that read runs get the expired copy if it expired less than one TTL ago (stale while
  revalidate), and otherwise wait for the same read;
- `forget` drops the entry and disowns a read in flight, so the next request reads again and the
  disowned read's answer (possibly older than the change that caused the `forget`) is not kept.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ReadThroughCache(Generic[K, V]):
    def __init__(
        self,
        read: Callable[[K], Awaitable[V]],
        ttl_s: float,
        *,
        max_entries: int = 10_000,
        stale_on_error: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl_s = ttl_s
        self._refresh_ahead_s = ttl_s / 4
        self._max_entries = max_entries
        self._stale_on_error = stale_on_error  # a failed read answers with the last copy, however old
        self._entries: dict[K, tuple[float, V]] = {}  # key -> (fresh until, monotonic s; value)
        self._reads: dict[K, asyncio.Task[V]] = {}
        self._clock = clock

    async def get(self, key: K) -> V:
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and entry[0] > now:
            if entry[0] - now < self._refresh_ahead_s and key not in self._reads:
                self._start(key)  # its answer replaces this copy; nobody waits for it
            return entry[1]
        read = self._reads.get(key)
        if read is None:
            read = self._start(key)
        elif entry is not None and now - entry[0] < self._ttl_s:
            return entry[1]  # one request is already reading it; a copy expired less than a TTL ago will do
        try:
            return await asyncio.shield(read)  # a caller that leaves does not cancel the others' read
        except Exception:
            if self._stale_on_error and entry is not None:
                return entry[1]
            raise

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
        self._reads.pop(key, None)

    def _start(self, key: K) -> asyncio.Task[V]:
        task = asyncio.get_running_loop().create_task(self._fill(key, self._clock()))
        task.add_done_callback(_consume_exception)
        self._reads[key] = task
        return task

    async def _fill(self, key: K, started_s: float) -> V:
        try:
            value = await self._read(key)
        finally:
            owned = self._reads.get(key) is asyncio.current_task()
            if owned:
                del self._reads[key]
        if owned:  # not forgotten while it ran
            if len(self._entries) >= self._max_entries:
                self._entries.clear()  # crude but bounded: a flood of random keys cannot grow memory
            self._entries[key] = (started_s + self._ttl_s, value)
        return value


def _consume_exception(task: asyncio.Task[object]) -> None:
    """Every waiter may have left: the read's failure must not be reported as never retrieved."""
    if not task.cancelled():
        task.exception()
