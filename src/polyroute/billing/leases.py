"""Reservation leases: renew the ones this process still works on, void the ones nobody renews.

A reservation is a lease on funds (`reservations.expires_at`). While its request runs, the owning
process extends the lease every `lease_s / 3` (one UPDATE for all of its open reservations). A process
that dies (kill -9, power loss) stops renewing; once the lease lapses, any process's sweeper voids the
reservation: the hold is released and nothing is charged, because what the dead process delivered
was only ever in its memory. A sweep runs at start-up and every `lease_s / 2`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError

from polyroute.billing import ledger_store as store
from polyroute.billing.ledger import Ledger
from polyroute.billing.ledger_units import RecordFor
from polyroute.db.tables import utc_now
from polyroute.db.write_batcher import SyncWork, WriteBatcher

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, ledger: Ledger, batcher: WriteBatcher, record_for: RecordFor | None = None) -> None:
        """`record_for` makes the usage record of a voided request (written with the void)."""
        self._ledger = ledger
        self._batcher = batcher
        self._record_for = record_for
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> int:
        """Sweep once (reservations left by a previous run), then keep renewing and sweeping."""
        voided = await self.sweep()
        lease_s = self._ledger.lease_s
        self._tasks = [
            asyncio.create_task(self._every(lease_s / 3, self.renew), name="lease-renewal"),
            asyncio.create_task(self._every(lease_s / 2, self.sweep), name="lease-sweeper"),
        ]
        return voided

    async def renew(self) -> int:
        refs = list(self._ledger.open_holds)
        if not refs:
            return 0
        expires_at = utc_now() + self._ledger.lease
        return await self._batcher.run(SyncWork(lambda conn: store.renew_sync(conn, refs, expires_at)))

    async def sweep(self) -> int:
        voided = await self._ledger.void_expired(record_for=self._record_for)
        if voided:
            log.warning("voided %d reservation(s) whose lease lapsed (their process stopped)", voided)
        return voided

    @staticmethod
    async def _every(interval_s: float, job: Callable[[], Awaitable[int]]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await job()
            except (SQLAlchemyError, OSError, RuntimeError) as error:
                log.warning("lease job failed (%s); trying again in %.1f s", type(error).__name__, interval_s)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
