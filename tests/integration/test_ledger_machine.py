"""A Hypothesis state machine drives the real ledger SQL (SQLite and PostgreSQL) through grants,
reservations, settles (including ones above the hold), releases, late and double closes, reserves
run again (a COMMIT whose outcome was lost), lease renewals, process crashes and sweeps, against a
plain-Python model of the money.

After every step the database must agree with the model to the last pUSD, and with itself: the
running totals equal the sums of the append-only entries, every reservation is closed at most once,
and without an over-the-hold settle the available balance is never negative.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.accounts.store import AccountStore
from polyroute.billing import ledger_store as store
from polyroute.billing.ledger_store import KeyBudget
from polyroute.db.engine import create_engine
from polyroute.db.migrate import upgrade_database
from polyroute.db.tables import key_spend, ledger_entries, reservations

LEASE = timedelta(seconds=60)
EPOCH = datetime(2026, 9, 1, tzinfo=UTC)
_accounts = itertools.count()


@dataclass
class Held:
    ref: str
    key: int  # index into the machine's keys
    amount: int
    expires_at: datetime
    live: bool = True  # False once its process crashed: nobody will settle it


class LedgerMachine(RuleBasedStateMachine):
    engine: AsyncEngine
    loop: asyncio.AbstractEventLoop
    checks = 0  # invariant checks run (one after each step), across examples

    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.now = EPOCH
        self.refs = itertools.count()
        self.credits = self.spent = 0
        self.open: dict[str, Held] = {}
        self.closed: set[str] = set()
        self.reserved_as: dict[str, tuple[int, int, datetime]] = {}  # ref -> (key, amount, expires_at)
        self.key_spent = [0, 0]
        self.overran = False
        self.account_id, self.keys = self.run(self._new_account())

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    async def _new_account(self) -> tuple[int, list[KeyBudget]]:
        accounts = AccountStore(self.engine)
        account = await accounts.create_account(f"machine-{next(_accounts)}-{id(self)}@example.com")
        _, free = await accounts.create_key(account.id, "unlimited")
        _, capped = await accounts.create_key(account.id, "capped", limit_pusd=5_000, limit_reset="daily")
        return account.id, [
            KeyBudget(free.hash, account.id),
            KeyBudget(capped.hash, account.id, capped.limit_pusd, capped.limit_reset),
        ]

    @property
    def today(self) -> date:
        return self.now.date()

    async def _in_transaction(self, work: Any) -> Any:
        async with self.engine.begin() as conn:
            return await work(conn)

    # --- rules ------------------------------------------------------------------------------------
    @rule(amount=st.integers(1, 20_000))
    def grant(self, amount: int) -> None:
        ref = f"grant-{self.account_id}-{next(self.refs)}"
        self.run(self._in_transaction(lambda conn: store.grant(conn, self.account_id, amount, ref, None)))
        self.credits += amount

    @rule(target=holds, amount=st.integers(1, 8_000), key=st.integers(0, 1))
    def reserve(self, amount: int, key: int) -> Any:
        ref = f"gen-{self.account_id}-{next(self.refs)}"
        budget = self.keys[key]
        expires_at = self.now + LEASE

        async def work(conn: Any) -> store.ReserveOutcome:
            return await store.reserve(
                conn, ref=ref, key=budget, amount_pusd=amount, model="m/x", expires_at=expires_at, today=self.today
            )

        outcome = self.run(self._in_transaction(work))
        available = self.credits - self.spent - sum(h.amount for h in self.open.values())
        key_ok = True
        if budget.limit_pusd is not None:
            key_held = sum(h.amount for h in self.open.values() if h.key == key)
            key_ok = self._key_period_spent(key) + key_held + amount <= budget.limit_pusd
        assert outcome.reserved == (amount <= available and key_ok)
        if not outcome.reserved:
            return None
        self.open[ref] = Held(ref, key, amount, expires_at)
        self.reserved_as[ref] = (key, amount, expires_at)
        return ref

    @rule(ref=holds)
    def reserve_again(self, ref: str | None) -> None:
        """A reserve run again (its COMMIT landed unseen) finds its open hold, or fails once it is closed:
        either way it holds nothing more."""
        if ref is not None:
            self._reserve_again(ref)

    @precondition(lambda self: self.closed)
    @rule(data=st.data())
    def reserve_again_after_its_close(self, data: st.DataObject) -> None:
        self._reserve_again(data.draw(st.sampled_from(sorted(self.closed))))

    def _reserve_again(self, ref: str) -> None:
        key, amount, expires_at = self.reserved_as[ref]

        async def work(conn: Any) -> store.ReserveOutcome:
            return await store.reserve(
                conn,
                ref=ref,
                key=self.keys[key],
                amount_pusd=amount,
                model="m/x",
                expires_at=expires_at,
                today=self.today,
            )

        if ref in self.open:
            assert self.run(self._in_transaction(work)).reserved
        else:
            with pytest.raises(IntegrityError):
                self.run(self._in_transaction(work))

    def _key_period_spent(self, key: int) -> int:
        return self.key_day_spent.get((key, self.today), 0)

    key_day_spent: dict[tuple[int, date], int]

    @rule(ref=consumes(holds), fraction=st.integers(0, 130))
    def settle(self, ref: str | None, fraction: int) -> None:
        self._close(ref, "settle", fraction)

    @rule(ref=consumes(holds))
    def release(self, ref: str | None) -> None:
        self._close(ref, "release", 0)

    def _close(self, ref: str | None, kind: str, fraction: int) -> None:
        if ref is None:
            return
        held = self.open.get(ref)
        if held is not None and not held.live:
            return  # its process crashed: only the sweeper can close it now
        charge = 0 if held is None or kind != "settle" else held.amount * fraction // 100
        if kind == "settle" and charge == 0:
            kind = "release"  # what the ledger service does with a zero charge

        async def work(conn: Any) -> store.ClosedReservation | None:
            return await store.close(conn, ref, kind=kind, charge_pusd=charge, today=self.today)

        closed = self.run(self._in_transaction(work))
        if held is None:
            assert closed is None  # voided by the sweeper before: a late close moves nothing
            return
        assert closed is not None and closed.amount_pusd == held.amount
        del self.open[ref]
        self.closed.add(ref)
        self.spent += charge
        self.key_spent[held.key] += charge
        day = (held.key, self.today)
        self.key_day_spent[day] = self.key_day_spent.get(day, 0) + charge
        self.overran |= charge > held.amount

    @rule(ref=holds)
    def close_twice(self, ref: str | None) -> None:
        """Whoever closes a closed reservation again (retry, sweeper) changes nothing."""
        if ref is not None and ref in self.closed:
            result = self.run(self._in_transaction(lambda c: store.close(c, ref, kind="release", today=self.today)))
            assert result is None

    @rule()
    def crash(self) -> None:
        """The process dies: its open reservations stay in the database and are never renewed."""
        for held in self.open.values():
            held.live = False

    @rule(seconds=st.integers(1, 50_000))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def renew(self) -> None:
        live = [held for held in self.open.values() if held.live]
        expires_at = self.now + LEASE
        renewed = self.run(self._in_transaction(lambda c: store.renew(c, [h.ref for h in live], expires_at)))
        assert renewed == len(live)
        for held in live:
            held.expires_at = expires_at

    @rule()
    def sweep(self) -> None:
        now = self.now

        async def work(conn: Any) -> list[str]:
            voided = []
            for ref in await store.expired_refs(conn, now, limit=10_000):
                closed = await store.close(conn, ref, kind="void", today=self.today, expired_before=now)
                if closed is not None and closed.account_id == self.account_id:
                    voided.append(ref)
            return voided

        voided = set(self.run(self._in_transaction(work)))
        expected = {ref for ref, held in self.open.items() if held.expires_at < now}
        assert voided == expected
        for ref in voided:
            del self.open[ref]
            self.closed.add(ref)

    # --- invariants -------------------------------------------------------------------------------
    @invariant()
    def money_agrees_with_the_model_and_the_entries(self) -> None:
        type(self).checks += 1
        self.run(self._check())

    async def _check(self) -> None:
        async with self.engine.connect() as conn:
            balance = await store.read_balance(conn, self.account_id)
            entries = dict(
                (
                    await conn.execute(
                        select(ledger_entries.c.kind, func.sum(ledger_entries.c.amount_pusd))
                        .where(ledger_entries.c.account_id == self.account_id)
                        .group_by(ledger_entries.c.kind)
                    )
                ).all()
            )
            open_rows = dict(
                (
                    await conn.execute(
                        select(reservations.c.ref, reservations.c.amount_pusd).where(
                            reservations.c.account_id == self.account_id
                        )
                    )
                ).all()
            )
            keys = {
                row.key_hash: row
                for row in await conn.execute(select(key_spend).where(key_spend.c.account_id == self.account_id))
            }
            closings = (
                await conn.execute(
                    select(func.count())
                    .select_from(ledger_entries)
                    .where(
                        ledger_entries.c.account_id == self.account_id,
                        ledger_entries.c.kind.in_(("settle", "release", "void")),
                    )
                )
            ).scalar_one()
        held = sum(h.amount for h in self.open.values())
        if balance is None:
            assert self.credits == 0 and not self.open
            return
        assert (balance.credits_pusd, balance.spent_pusd, balance.reserved_pusd) == (self.credits, self.spent, held)
        assert int(entries.get("grant") or 0) == self.credits
        assert int(entries.get("settle") or 0) == self.spent
        reserved_total = int(entries.get("reserve") or 0)
        released_total = int(entries.get("release") or 0) + int(entries.get("void") or 0)
        settled_holds = reserved_total - released_total - held  # what settled reservations had held
        assert settled_holds >= 0
        assert open_rows == {ref: h.amount for ref, h in self.open.items()}
        assert closings == len(self.closed)  # exactly one closing entry per closed reservation
        for index, budget in enumerate(self.keys):
            row = keys.get(budget.key_hash)
            key_held = sum(h.amount for h in self.open.values() if h.key == index)
            if row is None:
                assert key_held == 0 and self.key_spent[index] == 0
                continue
            assert (row.reserved_pusd, row.spent_pusd) == (key_held, self.key_spent[index])
        if not self.overran:
            assert balance.available_pusd >= 0


def _run_machine(database_url: str, examples: int, steps: int) -> int:
    """Returns the number of steps checked."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(upgrade_database(database_url))
        engine = create_engine(database_url)
        machine = type(
            "LedgerMachineOnDatabase",
            (LedgerMachine,),
            {"engine": engine, "loop": loop, "key_day_spent": None},
        )
        original_init = machine.__init__

        def init(self: LedgerMachine) -> None:
            self.key_day_spent = {}
            original_init(self)

        machine.__init__ = init  # type: ignore[method-assign]
        try:
            run_state_machine_as_test(
                machine,
                settings=settings(
                    max_examples=examples,
                    stateful_step_count=steps,
                    deadline=None,
                    derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                ),
            )
        finally:
            loop.run_until_complete(engine.dispose())
    finally:
        loop.close()
    return machine.checks


def test_the_ledger_holds_its_invariants_over_thousands_of_steps(database_url: str) -> None:
    assert _run_machine(database_url, examples=60, steps=50) >= 2_000


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_ledger_holds_its_invariants_over_a_long_run(database_url: str) -> None:
    assert _run_machine(database_url, examples=250, steps=100) >= 15_000
