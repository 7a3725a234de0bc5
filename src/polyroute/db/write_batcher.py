"""Group commit: many small write units share one transaction, and each caller learns its own result.

Callers `await batcher.run(work)`, where `work` is an async function of an open connection. One
background task takes every unit queued so far, runs them in order inside one transaction, commits,
and only then hands each caller its result: a result is never seen before it is durable. Under
light load a batch holds one unit (same latency as a direct transaction); under load, units that
queue while a transaction commits share the next one, so the number of commits stays small and
SQLite (one writer at a time) never has this process's writers waiting on each other.

A unit with a `group` attribute and a `run_group(conn, units)` method is run together with the
other units of its group in the batch, in one call: that is how inserts and total updates become one
statement per batch instead of one per unit. Units are plain callables otherwise.

The writer keeps one connection for itself (no pool checkout or pre-ping per batch) and opens a
new one after a failure. A unit must leave no partial effect when it decides not to write (e.g.
a refused reservation changes nothing). A unit that raises rolls back its batch; the others are
then retried one unit per transaction, so one bad unit fails only its own caller. Lock conflicts
(SQLite busy, PostgreSQL deadlock or serialization failure) are retried a few times with a short
backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[T]]

MAX_BATCH = 256
_RETRIES = 4
_RETRY_BACKOFF_S = 0.02
_CONFLICT_CODES = ("40001", "40P01")  # PostgreSQL serialization failure, deadlock


def is_lock_conflict(error: BaseException) -> bool:
    """A failure that says "someone else holds the lock; try again", on SQLite or PostgreSQL."""
    if not isinstance(error, DBAPIError):
        return False
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if code in _CONFLICT_CODES:
        return True
    text = str(error.orig).lower()
    return "database is locked" in text or "database table is locked" in text or "deadlock" in text


class WriteBatcher:
    def __init__(self, engine: AsyncEngine, *, max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: list[tuple[Work[Any], asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._conn: AsyncConnection | None = None
        self.commits = 0  # transactions committed (for measurements and tests)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="write-batcher")

    def submit(self, work: Work[T]) -> asyncio.Future[T]:
        """Queue `work`; the future resolves after the transaction holding it has committed.

        The unit runs even if the caller stops waiting (cancellation does not reach it)."""
        if self._closing:
            raise RuntimeError("the write batcher is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((work, future))
        self._wakeup.set()
        if self._task is None:  # not started (tests, CLI): run inline on the next loop turn
            self.start()
        return future

    async def run(self, work: Work[T]) -> T:
        return await self.submit(work)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._commit_batch(batch)
            if self._closing:
                return

    async def _commit_batch(self, batch: list[tuple[Work[Any], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._transaction([work for work, _ in batch])
        except Exception as error:
            if len(batch) == 1:
                _resolve(batch[0][1], error=error)
                return
            log.warning("a batch of %d writes failed (%s); retrying one by one", len(batch), type(error).__name__)
            for item in batch:
                await self._commit_batch([item])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _resolve(future, result=result)

    async def _transaction(self, works: list[Work[Any]]) -> list[Any]:
        for attempt in range(_RETRIES + 1):
            try:
                conn = self._conn or await self._engine.connect()
                self._conn = conn
                async with conn.begin():
                    results = await _run_grouped(conn, works)
                self.commits += 1
                return results
            except Exception as error:
                await self._drop_connection()
                if attempt == _RETRIES or not is_lock_conflict(error):
                    raise
                await asyncio.sleep(_RETRY_BACKOFF_S * 2**attempt)
        raise AssertionError("unreachable")

    async def _drop_connection(self) -> None:
        """After any failure start afresh: the connection may be broken or mid-transaction."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def aclose(self) -> None:
        """Commit everything queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        await self._drop_connection()


async def _run_grouped(conn: AsyncConnection, works: list[Work[Any]]) -> list[Any]:
    """Run `works` in order of first appearance of their group; a group runs in one `run_group` call."""
    groups: dict[object, list[int]] = {}
    for index, work in enumerate(works):
        groups.setdefault(getattr(work, "group", None) or index, []).append(index)
    results: list[Any] = [None] * len(works)
    for indexes in groups.values():
        first = works[indexes[0]]
        if len(indexes) == 1 or not hasattr(first, "run_group"):
            for index in indexes:
                results[index] = await works[index](conn)
            continue
        for index, result in zip(indexes, await first.run_group(conn, [works[i] for i in indexes]), strict=True):
            results[index] = result
    return results


def _resolve(future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
