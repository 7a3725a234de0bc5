"""Reserves whose COMMIT outcome was lost: released in the background once the database answers.

When the connection dies or times out during a reserve's COMMIT, the gateway cannot tell whether the
hold landed. The request is refused either way (503 with Retry-After, `ledger.BillingUnavailable`), so
a hold that did land must not stay open until its lease lapses: for a minute or more it would count
against the balance and could refuse the account's other requests with a wrong 402. Each such
reservation is queued here; one background task releases the queued ones that are open, a chunk per
transaction, and retries with backoff (at most `_RETRY_S[-1]` apart) until the database answers.

Releasing is idempotent per reference (`ledger_store.release_if_open_sync`): one that never landed is
not found and nothing is written. The queue is bounded; past the bound, and for anything still queued
at shutdown after one last attempt, the lease sweeper voids what landed once its lease lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

from sqlalchemy.exc import SQLAlchemyError

from polyroute.billing import ledger_store as store
from polyroute.billing.periods import utc_today
from polyroute.db.write_batcher import SyncWork, WriteBatcher

log = logging.getLogger(__name__)

_RETRY_S = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0)  # before each attempt; then every 10 s until one succeeds
_CHUNK = 500  # reservations released per transaction
MAX_PENDING = 10_000


class UnsureReserves:
    def __init__(self, batcher: WriteBatcher, max_pending: int = MAX_PENDING) -> None:
        self._batcher = batcher
        self._max_pending = max_pending
        self.pending: dict[str, int] = {}  # ref -> account id, in the order they failed
        self._task: asyncio.Task[None] | None = None

    def add(self, ref: str, account_id: int) -> None:
        """Release reservation `ref` soon if its reserve landed after all."""
        if len(self.pending) >= self._max_pending:
            log.error("too many unsure reserves; %s is left to the lease sweeper", ref)
            return
        self.pending[ref] = account_id
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._release_until_done())

    async def _release_until_done(self) -> None:
        for attempt in itertools.count():
            if not self.pending:
                return
            await asyncio.sleep(_RETRY_S[min(attempt, len(_RETRY_S) - 1)])
            try:
                while self.pending:
                    await self._release_chunk()
                return
            except (SQLAlchemyError, OSError) as error:
                log.warning(
                    "releasing %d unsure reserve(s) failed (%s); retrying", len(self.pending), type(error).__name__
                )
            except RuntimeError:  # the writer closed: shutdown, `drain` takes over
                return

    async def _release_chunk(self) -> None:
        chunk = dict(itertools.islice(self.pending.items(), _CHUNK))
        work = SyncWork(lambda conn: store.release_if_open_sync(conn, chunk, utc_today()))
        released = await self._batcher.run(work)
        for ref in chunk:
            self.pending.pop(ref, None)
        if released:
            log.warning(
                "released %d reservation(s) whose reserve had landed although the database reported a failure",
                len(released),
            )

    async def drain(self) -> None:
        """At shutdown, before the writer closes: one last attempt; what is left goes to the sweeper."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            while self.pending:
                await self._release_chunk()
        except (SQLAlchemyError, OSError, RuntimeError) as error:
            log.error(
                "%d unsure reserve(s) not released at shutdown (%s); the lease sweeper voids any that landed",
                len(self.pending),
                type(error).__name__,
            )
