"""Batched generation-record writer: the hot path appends, a background task flushes.

Records are flushed every `interval_s` or when `batch_size` accumulate, and on shutdown, so
a request never waits for the database to record its generation.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from sqlalchemy.exc import DBAPIError, OperationalError, StatementError

log = logging.getLogger(__name__)


class GenerationSink(Protocol):
    async def insert_many(self, rows: list[dict[str, Any]]) -> None: ...


class GenerationWriter:
    def __init__(self, sink: GenerationSink, *, interval_s: float = 0.2, batch_size: int = 500) -> None:
        self._sink = sink
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._pending: list[dict[str, Any]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="generation-writer")

    def add(self, row: dict[str, Any]) -> None:
        self._pending.append(row)
        if len(self._pending) >= self._batch_size:
            self._wakeup.set()

    async def flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._sink.insert_many(batch)
            except (OperationalError, OSError, ConnectionError) as exc:
                # The database is away: keep the rows and retry on the next tick.
                log.warning("writing %d generation records failed (%s); will retry", len(batch), type(exc).__name__)
                self._pending[:0] = batch
                raise
            except (StatementError, DBAPIError, ValueError):
                # Something in the batch can never be written (e.g. a duplicate id): write the
                # rows one by one so a single bad row cannot block every later record.
                await self._write_individually(batch)

    async def _write_individually(self, batch: list[dict[str, Any]]) -> None:
        for row in batch:
            try:
                await self._sink.insert_many([row])
            except (OperationalError, OSError, ConnectionError):
                self._pending.append(row)
                raise
            except (StatementError, DBAPIError, ValueError) as exc:
                log.error("dropping generation record %s: %s", row.get("id"), type(exc).__name__)

    async def _run(self) -> None:
        while not self._closing:
            try:
                async with asyncio.timeout(self._interval_s):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()
            try:
                await self.flush()
            except Exception:
                await asyncio.sleep(self._interval_s)

    async def aclose(self) -> None:
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        try:
            await self.flush()
        except Exception:
            log.error("dropping %d generation records at shutdown", len(self._pending))
