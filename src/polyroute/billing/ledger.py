"""The ledger service the relay talks to: authorize a request (reserve), then finish it (settle or release).

One reservation per request, one transaction to reserve and one to finish, both through the
process's group-commit writer. `finish` also writes the request's usage record in the same
transaction (the caller passes it as a unit of work), so money and record commit together.

Every `Hold` ends in exactly one settle or release: `finish` is idempotent in memory (`Hold.done`)
and in the database (only the first closing statement finds the reservation). A finish the caller
stops waiting for (client gone, shutdown) still runs to the end; `aclose` waits for those.
Reservations of a process that died are voided by the sweeper once their lease lapses
(`billing/leases.py`).

A write whose COMMIT outcome is lost (the connection died or timed out during it) may have landed.
Reserve and close are idempotent per reference (`ledger_store`), so running one again is safe: the
writer re-runs a failed batch unit by unit, and a finish retries until the database answers. A
reserve that fails is refused with 503 (Retry-After) and, if it landed, released in the background
(`billing/unsure_reserves.py`) rather than left open until its lease lapses.

Free requests (nothing to hold) read no row of their own: the account's balance row answers two
questions for them (has it bought the free tier's $10, is it in debt), from a read-through cache
with the key cache's TTL (`db/read_cache.py`). This process's own grants and charges drop the
account's entry, so they count at once here; other processes' within the TTL (docs/billing.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from polyroute.billing import ledger_store as store
from polyroute.billing.ledger_store import (
    ClosedReservation,
    CloseRequest,
    KeyBudget,
    ReserveOutcome,
    ReserveRequest,
)
from polyroute.billing.ledger_units import CloseUnit, Record, RecordFor, RecordWriter, ReserveUnit
from polyroute.billing.reservation import (
    NEGATIVE_BALANCE_MESSAGE,
    EndpointTerms,
    Refusal,
    Reservation,
    fit_reservation,
    refusal_message,
    worst_case,
)
from polyroute.billing.unsure_reserves import UnsureReserves
from polyroute.db.read_cache import ReadThroughCache
from polyroute.db.tables import utc_now
from polyroute.db.write_batcher import SyncWork, WriteBatcher, connection_lost
from polyroute.domain.errors import GatewayError, PaymentRequired

log = logging.getLogger(__name__)

Work = Callable[[AsyncConnection], Awaitable[object]]


def _no_records(conn: Connection, rows: list[Record]) -> None:
    """The default record writer: records are dropped (for a ledger used without a usage log)."""


_FIT_ATTEMPTS = 3  # a refused reservation is re-fitted to what is left; others may race for it
_FINISH_RETRY_S = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)


@dataclass(slots=True)
class Hold:
    """A request's claim on its account: `amount_pusd` reserved (0 for a free request)."""

    ref: str
    key: KeyBudget
    amount_pusd: int
    max_tokens: int | None = None  # a completion cap the relay must send upstream; None = unchanged
    done: bool = field(default=False)


class BillingUnavailable(GatewayError):
    """The ledger's database cannot be reached: fail closed (503) rather than serve unbilled."""

    status = 503
    error_type = "server"

    def __init__(self) -> None:
        super().__init__("Billing is temporarily unavailable; try again shortly", headers={"Retry-After": "1"})


class Ledger:
    def __init__(
        self,
        engine: AsyncEngine,
        batcher: WriteBatcher,
        *,
        write_records: RecordWriter = _no_records,
        lease_s: float = 60.0,
        finish_wait_s: float = 5.0,
        balance_ttl_s: float = 1.0,
    ) -> None:
        self._engine = engine
        self._batcher = batcher
        self._write_records = write_records
        self.lease = timedelta(seconds=lease_s)  # a reservation's lease, renewed while its request runs
        self._finish_wait_s = finish_wait_s
        self.open_holds: dict[str, Hold] = {}  # reserved and not yet closed, by ref (leases renew these)
        self._finishing: set[asyncio.Task[None]] = set()
        # Closes sent to the writer and not yet answered (their done callback handles the outcome).
        self._first_attempts: set[asyncio.Future[ClosedReservation | None]] = set()
        self._retries: dict[str, asyncio.Task[None]] = {}  # by ref: closes whose first attempt failed
        self.unsure = UnsureReserves(batcher)  # failed reserves that may have landed: released soon
        # Free requests' view of an account's balance row (issue #9: two reads through the async
        # engine per free request doubled its cost); dropped on this process's grants and charges.
        self._balances: ReadThroughCache[int, store.Balance | None] = ReadThroughCache(
            self._read_balance, balance_ttl_s
        )

    @property
    def lease_s(self) -> float:
        return self.lease.total_seconds()

    @property
    def pending(self) -> int:
        """Closes still running in the background (finishes, and releases of unsure reserves)."""
        return len(self._first_attempts) + len(self._finishing) + len(self.unsure.pending)

    # --- authorize --------------------------------------------------------------------------------
    async def authorize(
        self,
        ref: str,
        key: KeyBudget,
        model: str,
        plan: Sequence[EndpointTerms],
        prompt_tokens: int,
        max_tokens: int | None,
    ) -> Hold:
        """Reserve the worst case of `plan`, or raise PaymentRequired (402) before any upstream call."""
        full_pusd = worst_case(plan, prompt_tokens, max_tokens)
        if full_pusd == 0:
            await self._require_non_negative(key.account_id)
            return Hold(ref, key, 0)
        # Optimistic first try: the full worst case, with no read before it (one transaction).
        wanted: Reservation | Refusal = Reservation(full_pusd, None)
        for _ in range(_FIT_ATTEMPTS):
            assert isinstance(wanted, Reservation)
            hold = Hold(ref, key, wanted.amount_pusd, wanted.max_tokens)
            outcome = await self._reserve(hold, model)
            if outcome.reserved:
                return hold
            wanted = fit_reservation(plan, prompt_tokens, max_tokens, outcome.budget_pusd)
            if isinstance(wanted, Refusal):
                raise _payment_required(wanted, outcome, key)
        raise PaymentRequired("Insufficient credits: too many requests are holding this account's balance; retry")

    async def _reserve(self, hold: Hold, model: str) -> ReserveOutcome:
        expires_at = utc_now() + self.lease
        unit = ReserveUnit(ReserveRequest(hold.ref, hold.key, hold.amount_pusd, model, expires_at))
        future = self._submit(unit, alone=not self.open_holds)
        try:
            outcome = await asyncio.shield(future)
        except asyncio.CancelledError:
            # The caller left; the reservation may still commit: release it when it does.
            future.add_done_callback(lambda done: self._release_orphan(hold, done))
            raise
        except (SQLAlchemyError, OSError) as error:  # asyncpg's connect errors arrive unwrapped
            log.error("reserving %s failed: %s", hold.ref, type(error).__name__)
            self.unsure.add(hold.ref, hold.key.account_id)  # it may have landed all the same
            raise BillingUnavailable() from None
        if outcome.reserved:
            self.open_holds[hold.ref] = hold
        return outcome

    def _submit(self, work: ReserveUnit, *, alone: bool) -> asyncio.Future[ReserveOutcome]:
        try:
            return self._batcher.submit(work, alone=alone)
        except RuntimeError:
            raise BillingUnavailable() from None

    def _release_orphan(self, hold: Hold, done: asyncio.Future[ReserveOutcome]) -> None:
        if done.cancelled():
            return
        if done.exception() is not None:
            self.unsure.add(hold.ref, hold.key.account_id)  # it may have landed all the same
            return
        if not done.result().reserved:
            return
        self.open_holds[hold.ref] = hold
        task = asyncio.ensure_future(self._close(hold, 0, None))
        self._track(task)

    async def _require_non_negative(self, account_id: int) -> None:
        balance = await self._cached_balance(account_id)
        if balance is not None and balance.balance_pusd < 0:
            raise PaymentRequired(NEGATIVE_BALANCE_MESSAGE, metadata={"limit_source": "account"})

    # --- finish -----------------------------------------------------------------------------------
    async def finish(self, hold: Hold, charge_pusd: int, record: Record | None = None) -> None:
        """Settle `charge_pusd` (release when 0) and write `record` in the same transaction. Once per hold.

        The close goes straight to the writer; only if that first attempt fails does a background task
        take over (`_close`: retries while the database is unreachable, or settles without the record).
        The outcome is handled by the first attempt's done callback whether or not the caller still
        waits (issue #9: a task, `wait_for` and two more loop passes per request are saved)."""
        if hold.done:
            return
        hold.done = True
        if hold.amount_pusd == 0 and record is None:
            return  # nothing was held and nothing is to be written
        work = self._closing_work(hold, charge_pusd, record)
        # Alone: no other hold of this process is open (a lone request may commit without a hand-off).
        alone = len(self.open_holds) <= 1 and (not self.open_holds or hold.ref in self.open_holds)
        try:
            first = self._batcher.submit(work, alone=alone)
        except RuntimeError:  # the writer is closing: the background path reports it
            self._track(asyncio.ensure_future(self._close(hold, charge_pusd, record)))
            return
        self._first_attempts.add(first)
        if first.done():  # committed inside `submit`: the hold is closed before the next request looks
            self._first_attempt_done(first, hold, charge_pusd, record)
        else:
            first.add_done_callback(lambda done: self._first_attempt_done(done, hold, charge_pusd, record))
        loop = first.get_loop()
        deadline = loop.time() + self._finish_wait_s
        if await _done_within(first, self._finish_wait_s):
            error = None if first.cancelled() else first.exception()
            if error is not None and not isinstance(error, (SQLAlchemyError, OSError)):
                raise error  # a bug, not the database: the caller sees it (retries run meanwhile)
            retries = self._retries.get(hold.ref)  # the done callback ran first: started on failure
            if retries is None or await _done_within(retries, deadline - loop.time()):
                return
        log.warning("settling %s is slow; it continues in the background", hold.ref)

    def _first_attempt_done(
        self, done: asyncio.Future[ClosedReservation | None], hold: Hold, charge_pusd: int, record: Record | None
    ) -> None:
        if done.cancelled() or (error := done.exception()) is not None:
            # Unsure whether it landed: run the close again in the background (a close is idempotent).
            log.warning(
                "settling %s failed (%s); retrying", hold.ref, "cancelled" if done.cancelled() else type(error).__name__
            )
            task = asyncio.ensure_future(self._close(hold, charge_pusd, record, failed_once=True))
            self._retries[hold.ref] = task
            task.add_done_callback(lambda _: self._retries.pop(hold.ref, None))
            self._track(task)
        else:
            if done.result() is None and hold.amount_pusd > 0:
                log.warning("reservation %s was already closed (voided?): not charged again", hold.ref)
            self.open_holds.pop(hold.ref, None)
            if charge_pusd:
                self.balance_changed(hold.key.account_id)
        self._first_attempts.discard(done)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _close(self, hold: Hold, charge_pusd: int, record: Record | None, *, failed_once: bool = False) -> None:
        try:
            try:
                await self._run_retrying(
                    self._closing_work(hold, charge_pusd, record), hold.ref, failed_once=failed_once
                )
            except (SQLAlchemyError, OSError) as error:
                if record is None or _unreachable(error):
                    raise
                # The record cannot be written (never the money's fault): settle without it.
                log.error(
                    "writing the usage record of %s failed (%s); settling without it", hold.ref, type(error).__name__
                )
                await self._run_retrying(self._closing_work(hold, charge_pusd, None), hold.ref, failed_once=True)
        except (SQLAlchemyError, RuntimeError, OSError) as error:
            log.error(
                "giving up on settling %s (%s); the sweeper voids it when its lease lapses",
                hold.ref,
                type(error).__name__,
            )
        finally:
            self.open_holds.pop(hold.ref, None)
            if charge_pusd:
                self.balance_changed(hold.key.account_id)

    def _closing_work(self, hold: Hold, charge_pusd: int, record: Record | None) -> CloseUnit:
        request = None
        if hold.amount_pusd > 0:
            request = CloseRequest(hold.ref, "settle" if charge_pusd > 0 else "release", charge_pusd)
        return CloseUnit(request, self._write_records, record)

    async def _run_retrying(self, work: CloseUnit, ref: str, *, failed_once: bool = False) -> None:
        """Run `work`, retrying while the database is unreachable (up to about 40 s). A retry is safe
        even when the failed attempt's COMMIT landed unseen: the close then finds nothing to close."""
        failed = failed_once
        for delay_s in (*_FINISH_RETRY_S, None):
            try:
                closed = await self._batcher.run(work)
            except (SQLAlchemyError, OSError) as error:
                if delay_s is None or not _unreachable(error):
                    raise
                log.warning("settling %s failed (%s); retrying in %.1f s", ref, type(error).__name__, delay_s)
                failed = True
                await asyncio.sleep(delay_s)
                continue
            if closed is None and work.request is not None:
                if failed:
                    log.info("reservation %s was closed by a failed attempt that landed (or voided): not again", ref)
                else:
                    log.warning("reservation %s was already closed (voided?): not charged again", ref)
            return

    async def wait_finishing(self) -> None:
        """Wait for every finish still running, then release unsure reserves (one last attempt);
        called at shutdown, before the writer closes."""
        while self._first_attempts or self._finishing:
            await asyncio.gather(*self._first_attempts, *self._finishing, return_exceptions=True)
        await self.unsure.drain()

    async def credits_bought_pusd(self, account_id: int) -> int:
        """Every credit ever granted to the account (the free tier's "credits purchased"); cached."""
        balance = await self._cached_balance(account_id)
        return 0 if balance is None else balance.credits_pusd

    def balance_changed(self, account_id: int) -> None:
        """The account's balance changed (a charge or grant here, or a grant made outside `grant`: the
        web app's admin grant, a credit code): free requests read it again."""
        self._balances.forget(account_id)

    async def _cached_balance(self, account_id: int) -> store.Balance | None:
        try:
            return await self._balances.get(account_id)
        except (SQLAlchemyError, OSError):
            raise BillingUnavailable() from None

    async def _read_balance(self, account_id: int) -> store.Balance | None:
        async with self._engine.connect() as conn:
            return await store.read_balance(conn, account_id)

    # --- operator actions -------------------------------------------------------------------------
    async def grant(self, account_id: int, amount_pusd: int, ref: str, note: str | None = None) -> store.Balance:
        work = SyncWork(lambda conn: store.grant_sync(conn, account_id, amount_pusd, ref, note))
        try:
            return await self._batcher.run(work)
        finally:
            self.balance_changed(account_id)

    async def void_expired(self, now: datetime | None = None, record_for: RecordFor | None = None) -> int:
        """Void every reservation whose lease lapsed before `now`; returns how many were voided."""
        moment = now or utc_now()
        async with self._engine.connect() as conn:
            refs = await store.expired_refs(conn, moment)
        units = [
            self._batcher.submit(
                CloseUnit(CloseRequest(ref, "void", expired_before=moment), self._write_records, None, record_for)
            )
            for ref in refs
        ]
        return sum(closed is not None for closed in await asyncio.gather(*units))


def _unreachable(error: BaseException) -> bool:
    """The database could not be reached or the connection died (maybe after the COMMIT landed):
    worth trying again. Wider than the writer's `connection_lost`: an OperationalError (e.g. a lock
    or connect failure outlasting the writer's own retries) is retried here too."""
    return isinstance(error, OperationalError) or connection_lost(error)


def _payment_required(refusal: Refusal, outcome: ReserveOutcome, key: KeyBudget) -> PaymentRequired:
    source = outcome.limited_by
    period = key.limit_reset if source == "key" else None
    metadata = {
        "limit_source": source,
        "requested_tokens": refusal.requested_tokens,
        "affordable_tokens": refusal.affordable_tokens,
    }
    return PaymentRequired(refusal_message(refusal, source=source, period=period), metadata=metadata)


async def _done_within(future: asyncio.Future[Any], timeout_s: float) -> bool:
    """Wait up to `timeout_s` for `future` without ever cancelling it (a caller that leaves or
    gives up leaves it running); whether it is done. One waiter and one timer, with the outcome
    of `asyncio.timeout` around `asyncio.shield` but without its context manager, state enum
    reads and second future (issue #9)."""
    if future.done():
        return True
    loop = future.get_loop()
    waiter = loop.create_future()

    def wake(_: object) -> None:
        if not waiter.done():
            waiter.set_result(None)

    future.add_done_callback(wake)
    timer = loop.call_later(max(0.0, timeout_s), wake, None)
    try:
        await waiter
    finally:
        timer.cancel()
        future.remove_done_callback(wake)
    return future.done()
