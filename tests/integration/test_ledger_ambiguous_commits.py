"""Commits whose outcome the gateway does not learn (SQLite and PostgreSQL): the COMMIT lands, then the
connection reports an error, as when PostgreSQL's connection dies or times out during a COMMIT.

The fault is injected at the driver boundary, not in the ledger: a listener on every engine's `commit`
event commits the real DBAPI connection itself and then raises the driver's "connection lost" error.
Whatever the ledger does next (503 and a background release, a batch re-run unit by unit, a settle
retried) must leave every reservation with exactly one closing entry, the running totals equal to the
open holds and the settles, and nobody charged twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.accounts.store import AccountStore
from polyroute.billing import ledger_store as store
from polyroute.billing.ledger import BillingUnavailable, Hold, Ledger
from polyroute.billing.ledger_store import KeyBudget
from polyroute.billing.reservation import EndpointTerms
from polyroute.catalog.types import Pricing
from polyroute.db.tables import key_spend, ledger_entries, reservations
from polyroute.db.write_batcher import WriteBatcher

PLAN = [EndpointTerms(Pricing(prompt=500_000, completion=1_500_000), max_completion_tokens=1_000)]
PROMPT, MAX_TOKENS = 20, 100
HOLD = PROMPT * 500_000 + MAX_TOKENS * 1_500_000
TODAY = date(2026, 9, 2)
LATER = datetime.now(UTC) + timedelta(hours=1)


class CommitsThatLandThenFail:
    """Make the next `count` commits (of any engine in this process) land, then raise as a lost connection
    (or, with `land=False`, be rolled back: the connection died before the COMMIT reached the server)."""

    def __init__(self) -> None:
        self.armed = 0
        self.land = True
        self.landed = self.lost = 0

    def arm(self, count: int = 1, *, land: bool = True) -> None:
        self.armed, self.land = count, land

    def __call__(self, conn: Connection) -> None:
        if self.armed <= 0:
            return
        self.armed -= 1
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        if self.land:
            dbapi.commit()  # the COMMIT lands ...
            self.landed += 1
        else:
            dbapi.rollback()
            self.lost += 1
        # ... unseen: what asyncpg's "connection was closed in the middle of operation" becomes
        raise DBAPIError("COMMIT", None, ConnectionResetError("connection lost"), connection_invalidated=True)


@contextmanager
def commits_that_land_then_fail() -> Iterator[CommitsThatLandThenFail]:
    fault = CommitsThatLandThenFail()
    event.listen(Engine, "commit", fault)
    try:
        yield fault
    finally:
        event.remove(Engine, "commit", fault)


@pytest.fixture
def fault() -> Iterator[CommitsThatLandThenFail]:
    with commits_that_land_then_fail() as injected:
        yield injected


async def new_key(engine: AsyncEngine, email: str = "a@example.com", **limits: Any) -> KeyBudget:
    accounts = AccountStore(engine)
    account = await accounts.ensure_account(email)
    _, key = await accounts.create_key(account.id, "k", **limits)
    return KeyBudget(key.hash, account.id, key.limit_pusd, key.limit_reset)


async def audit(engine: AsyncEngine, account_id: int) -> dict[str, Any]:
    """The account's totals next to what its entries and open holds say they must be."""
    async with engine.connect() as conn:
        balance = await store.read_balance(conn, account_id)
        assert balance is not None
        open_holds = (
            await conn.execute(
                select(func.coalesce(func.sum(reservations.c.amount_pusd), 0)).where(
                    reservations.c.account_id == account_id
                )
            )
        ).scalar_one()
        key_reserved = (
            await conn.execute(
                select(func.coalesce(func.sum(key_spend.c.reserved_pusd), 0)).where(
                    key_spend.c.account_id == account_id
                )
            )
        ).scalar_one()
        rows = (
            await conn.execute(
                select(ledger_entries.c.ref, ledger_entries.c.kind, ledger_entries.c.amount_pusd).where(
                    ledger_entries.c.account_id == account_id
                )
            )
        ).all()
    entries: dict[str, list[str]] = {}
    for row in rows:
        entries.setdefault(row.ref, []).append(row.kind)
    settled = sum(int(row.amount_pusd) for row in rows if row.kind == "settle")
    return {
        "reserved": balance.reserved_pusd,
        "open_holds": int(open_holds),
        "key_reserved": int(key_reserved),
        "spent": balance.spent_pusd,
        "settled": settled,
        "entries": {ref: sorted(kinds) for ref, kinds in entries.items() if not ref.startswith("grant")},
    }


def assert_consistent(found: dict[str, Any]) -> None:
    assert found["reserved"] == found["open_holds"] == found["key_reserved"], found
    assert found["spent"] == found["settled"], found
    for ref, kinds in found["entries"].items():
        closing = [kind for kind in kinds if kind != "reserve"]
        assert kinds.count("reserve") == 1 and len(closing) <= 1, (ref, kinds)


async def another_hold_open(ledger: Ledger, key: KeyBudget) -> Hold:
    """Another request's hold, left open: the reserves that follow are queued on the writer and
    batched (with no other hold open, a lone reserve commits inside the writer's `submit`)."""
    return await ledger.authorize("gen-other", key, "m/x", PLAN, PROMPT, MAX_TOKENS)


# --- the store: reserve and close run twice -----------------------------------------------------------
async def reserve_once(engine: AsyncEngine, key: KeyBudget, ref: str, amount: int) -> store.ReserveOutcome:
    async with engine.begin() as conn:
        return await store.reserve(
            conn, ref=ref, key=key, amount_pusd=amount, model="m/x", expires_at=LATER, today=TODAY
        )


@pytest.mark.parametrize("limit", [None, 10_000], ids=["no-limit", "key-limit"])
async def test_a_reserve_run_again_finds_its_hold_and_holds_nothing_more(
    migrated_engine: AsyncEngine, limit: int | None
) -> None:
    key = await new_key(migrated_engine, limit_pusd=limit)
    async with migrated_engine.begin() as conn:
        await store.grant(conn, key.account_id, 1_000_000, "grant-1", None)
    first = await reserve_once(migrated_engine, key, "gen-1", 600)
    again = await reserve_once(migrated_engine, key, "gen-1", 600)
    assert first.reserved and again.reserved
    found = await audit(migrated_engine, key.account_id)
    assert (found["reserved"], found["entries"]) == (600, {"gen-1": ["reserve"]})
    assert_consistent(found)


async def test_a_reserve_run_again_after_its_close_holds_nothing(migrated_engine: AsyncEngine) -> None:
    key = await new_key(migrated_engine)
    async with migrated_engine.begin() as conn:
        await store.grant(conn, key.account_id, 1_000_000, "grant-1", None)
    assert (await reserve_once(migrated_engine, key, "gen-1", 600)).reserved
    async with migrated_engine.begin() as conn:
        await store.close(conn, "gen-1", kind="release", today=TODAY)
    with pytest.raises(IntegrityError):  # its reserve entry exists: the reference is spent (fails closed)
        await reserve_once(migrated_engine, key, "gen-1", 600)
    found = await audit(migrated_engine, key.account_id)
    assert (found["reserved"], found["entries"]) == (0, {"gen-1": ["release", "reserve"]})
    assert_consistent(found)


async def test_a_close_run_again_moves_no_money(migrated_engine: AsyncEngine) -> None:
    key = await new_key(migrated_engine)
    async with migrated_engine.begin() as conn:
        await store.grant(conn, key.account_id, 1_000_000, "grant-1", None)
    assert (await reserve_once(migrated_engine, key, "gen-1", 600)).reserved
    for expected in (True, False):
        async with migrated_engine.begin() as conn:
            closed = await store.close(conn, "gen-1", kind="settle", charge_pusd=250, today=TODAY)
        assert (closed is not None) is expected
    found = await audit(migrated_engine, key.account_id)
    assert (found["reserved"], found["spent"], found["entries"]) == (0, 250, {"gen-1": ["reserve", "settle"]})
    assert_consistent(found)


async def test_a_release_of_an_unsure_reserve_waits_for_one_still_committing(migrated_engine: AsyncEngine) -> None:
    """A reserve whose connection is gone may still be committing on the server: the release waits for it."""
    key = await new_key(migrated_engine)
    async with migrated_engine.begin() as conn:
        await store.grant(conn, key.account_id, 1_000_000, "grant-1", None)
    async with migrated_engine.connect() as reserving:
        transaction = await reserving.begin()
        await store.reserve(
            reserving, ref="gen-1", key=key, amount_pusd=600, model="m/x", expires_at=LATER, today=TODAY
        )

        async def release() -> list[store.ClosedReservation]:
            async with migrated_engine.begin() as conn:
                return await conn.run_sync(store.release_if_open_sync, {"gen-1": key.account_id}, TODAY)

        releasing = asyncio.ensure_future(release())
        await asyncio.sleep(0.5)
        assert not releasing.done()  # waiting for the reserve's transaction
        await transaction.commit()
    released = await releasing
    assert [closed.ref for closed in released] == ["gen-1"]
    found = await audit(migrated_engine, key.account_id)
    assert (found["reserved"], found["entries"]) == (0, {"gen-1": ["release", "reserve"]})
    assert_consistent(found)


# --- the ledger service: commits that land unseen -------------------------------------------------------
@pytest.fixture
async def setup(migrated_engine: AsyncEngine) -> AsyncIterator[tuple[Ledger, KeyBudget]]:
    key = await new_key(migrated_engine, "amb@example.com")
    writer = WriteBatcher(migrated_engine)
    ledger = Ledger(migrated_engine, writer, lease_s=600)  # the sweeper plays no part here
    await ledger.grant(key.account_id, 10**12, "grant-1")
    yield ledger, key
    await ledger.wait_finishing()
    await writer.aclose()


async def settled_down(ledger: Ledger, engine: AsyncEngine, account_id: int, reserved: int) -> dict[str, Any]:
    """The audit once background work is done and `reserved` is what the account holds (waits up to 10 s)."""
    for _ in range(200):
        found = await audit(engine, account_id)
        if found["reserved"] == reserved and not ledger.pending:
            return found
        await asyncio.sleep(0.05)
    return await audit(engine, account_id)


async def test_a_reserve_that_landed_unseen_is_refused_with_503_and_released(
    setup, migrated_engine: AsyncEngine, fault: CommitsThatLandThenFail, caplog: pytest.LogCaptureFixture
) -> None:
    ledger, key = setup
    fault.arm()
    with pytest.raises(BillingUnavailable) as refused:
        await ledger.authorize("gen-1", key, "m/x", PLAN, PROMPT, MAX_TOKENS)
    assert fault.landed == 1
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "1"}
    assert not ledger.open_holds
    found = await settled_down(ledger, migrated_engine, key.account_id, reserved=0)
    assert found["reserved"] == 0 and found["entries"] == {"gen-1": ["release", "reserve"]}, found
    assert_consistent(found)
    assert "released 1 reservation(s) whose reserve had landed" in caplog.text


async def test_a_reserve_that_did_not_land_is_refused_and_nothing_is_written(
    setup, migrated_engine: AsyncEngine, fault: CommitsThatLandThenFail
) -> None:
    ledger, key = setup
    fault.arm(land=False)
    with pytest.raises(BillingUnavailable):
        await ledger.authorize("gen-1", key, "m/x", PLAN, PROMPT, MAX_TOKENS)
    assert fault.lost == 1
    found = await settled_down(ledger, migrated_engine, key.account_id, reserved=0)
    assert found["reserved"] == 0 and found["entries"] == {}, found
    assert not ledger.pending


async def test_a_batch_that_landed_unseen_is_rerun_unit_by_unit_exactly_once(
    setup, migrated_engine: AsyncEngine, fault: CommitsThatLandThenFail, caplog: pytest.LogCaptureFixture
) -> None:
    ledger, key = setup
    other = await another_hold_open(ledger, key)
    fault.arm()  # the batch of 8 reserves lands unseen; each is then re-run alone
    holds: list[Hold] = await asyncio.gather(
        *(ledger.authorize(f"gen-{i}", key, "m/x", PLAN, PROMPT, MAX_TOKENS) for i in range(8))
    )
    assert fault.landed == 1 and len(holds) == 8
    assert set(ledger.open_holds) == {f"gen-{i}" for i in range(8)} | {other.ref}
    found = await audit(migrated_engine, key.account_id)
    assert found["reserved"] == 9 * HOLD, found
    assert_consistent(found)
    assert caplog.text.count("a batch of 8 writes failed (DBAPIError); retrying one by one") == 1

    fault.arm()  # the batch of 8 settles (and releases) lands unseen; each is then re-run alone
    charges = [0 if i % 4 == 0 else 1_000 * (i + 1) for i in range(8)]
    await asyncio.gather(*(ledger.finish(hold, charge) for hold, charge in zip(holds, charges, strict=True)))
    await ledger.finish(other, 0)
    found = await settled_down(ledger, migrated_engine, key.account_id, reserved=0)
    assert fault.landed == 2
    assert found["reserved"] == 0 and found["spent"] == sum(charges), found
    assert all(kinds in (["release", "reserve"], ["reserve", "settle"]) for kinds in found["entries"].values())
    assert_consistent(found)
    assert caplog.text.count("retrying one by one") == 2


async def test_a_settle_that_landed_unseen_is_not_charged_again(
    setup, migrated_engine: AsyncEngine, fault: CommitsThatLandThenFail, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "polyroute.billing.ledger")
    ledger, key = setup
    hold = await ledger.authorize("gen-1", key, "m/x", PLAN, PROMPT, MAX_TOKENS)
    fault.arm()
    await ledger.finish(hold, 12_345)
    found = await settled_down(ledger, migrated_engine, key.account_id, reserved=0)
    assert fault.landed == 1
    assert (found["reserved"], found["spent"], found["entries"]) == (0, 12_345, {"gen-1": ["reserve", "settle"]})
    assert_consistent(found)
    assert "settling gen-1 failed (DBAPIError)" in caplog.text  # and retried:
    assert "reservation gen-1 was closed by a failed attempt that landed" in caplog.text


async def test_a_caller_gone_during_a_reserve_that_landed_unseen_leaves_no_hold(
    setup, migrated_engine: AsyncEngine, fault: CommitsThatLandThenFail
) -> None:
    ledger, key = setup
    other = await another_hold_open(ledger, key)
    fault.arm()
    task = asyncio.ensure_future(ledger.authorize("gen-1", key, "m/x", PLAN, PROMPT, MAX_TOKENS))
    await asyncio.sleep(0)  # the reserve is queued on the writer
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await ledger.finish(other, 0)
    found = await settled_down(ledger, migrated_engine, key.account_id, reserved=0)
    assert fault.landed == 1
    expected = {"gen-1": ["release", "reserve"], other.ref: ["release", "reserve"]}
    assert found["reserved"] == 0 and found["entries"] == expected, found
    assert_consistent(found)


async def test_unsure_reserves_are_released_once_the_database_answers_again(
    setup, migrated_engine: AsyncEngine, fault: CommitsThatLandThenFail
) -> None:
    """The first confirmations fail too (their commits land unseen as well): they are retried, with backoff."""
    ledger, key = setup
    fault.arm(3)  # the reserve, then the first two attempts to release it
    with pytest.raises(BillingUnavailable):
        await ledger.authorize("gen-1", key, "m/x", PLAN, PROMPT, MAX_TOKENS)
    found = await settled_down(ledger, migrated_engine, key.account_id, reserved=0)
    assert fault.landed == 3
    assert found["reserved"] == 0 and found["entries"] == {"gen-1": ["release", "reserve"]}, found
    assert_consistent(found)


async def test_a_grant_that_landed_unseen_is_not_added_again_with_its_ref(
    setup, migrated_engine: AsyncEngine, fault: CommitsThatLandThenFail
) -> None:
    ledger, key = setup
    fault.arm()
    with pytest.raises(DBAPIError):
        await ledger.grant(key.account_id, 5_000, "grant-invoice-2")
    assert fault.landed == 1
    balance = await ledger.grant(key.account_id, 5_000, "grant-invoice-2")  # the operator runs it again
    assert balance.credits_pusd == 10**12 + 5_000
    with pytest.raises(ValueError, match="another account or amount"):
        await ledger.grant(key.account_id, 6_000, "grant-invoice-2")
    async with migrated_engine.connect() as conn:
        grants = (
            await conn.execute(
                select(func.count()).where(ledger_entries.c.ref == "grant-invoice-2", ledger_entries.c.kind == "grant")
            )
        ).scalar_one()
    assert grants == 1
