"""The ledger service on SQLite and PostgreSQL: authorize (reserve or 402), finish exactly once, orphans
left by a caller that went away, and the sweeper's voids with their records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.accounts.store import AccountStore
from polyroute.billing import ledger_store as store
from polyroute.billing.ledger import Ledger
from polyroute.billing.ledger_store import KeyBudget
from polyroute.billing.reservation import EndpointTerms
from polyroute.catalog.types import Pricing
from polyroute.db.tables import account_balances, ledger_entries, reservations
from polyroute.db.write_batcher import WriteBatcher
from polyroute.domain.errors import PaymentRequired

PLAN = [EndpointTerms(Pricing(prompt=500_000, completion=1_500_000), max_completion_tokens=1_000)]
FREE = [EndpointTerms(Pricing(prompt=0, completion=0), max_completion_tokens=1_000)]
PROMPT = 20  # tokens: 10,000,000 pUSD


class Records:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def __call__(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)


@pytest.fixture
async def setup(migrated_engine: AsyncEngine) -> AsyncIterator[tuple[Ledger, KeyBudget, Records]]:
    accounts = AccountStore(migrated_engine)
    account = await accounts.create_account("svc@example.com")
    _, key = await accounts.create_key(account.id, "k")
    writer = WriteBatcher(migrated_engine)
    records = Records()
    ledger = Ledger(migrated_engine, writer, write_records=records, lease_s=60)
    yield ledger, KeyBudget(key.hash, account.id), records
    await ledger.wait_finishing()
    await writer.aclose()


async def balance(engine: AsyncEngine, account_id: int) -> store.Balance | None:
    async with engine.connect() as conn:
        return await store.read_balance(conn, account_id)


async def test_authorize_then_settle_with_its_record(setup, migrated_engine: AsyncEngine) -> None:
    ledger, key, records = setup
    await ledger.grant(key.account_id, 10**12, "grant-1")
    hold = await ledger.authorize("gen-1", key, "m/x", PLAN, PROMPT, 100)
    assert hold.amount_pusd == PROMPT * 500_000 + 100 * 1_500_000 and hold.max_tokens is None
    assert set(ledger.open_holds) == {"gen-1"}
    await ledger.finish(hold, 12_345, {"id": "gen-1"})
    await ledger.finish(hold, 99_999, {"id": "gen-1"})  # a second finish is a no-op
    found = await balance(migrated_engine, key.account_id)
    assert found is not None and (found.spent_pusd, found.reserved_pusd) == (12_345, 0)
    assert records.rows == [{"id": "gen-1"}] and not ledger.open_holds


async def test_a_zero_charge_releases(setup, migrated_engine: AsyncEngine) -> None:
    ledger, key, _ = setup
    await ledger.grant(key.account_id, 10**12, "grant-1")
    hold = await ledger.authorize("gen-1", key, "m/x", PLAN, PROMPT, 100)
    await ledger.finish(hold, 0)
    async with migrated_engine.connect() as conn:
        kinds = sorted((await conn.execute(select(ledger_entries.c.kind))).scalars())
    assert kinds == ["grant", "release", "reserve"]


async def test_refusals_and_the_implicit_cap(setup) -> None:
    ledger, key, _ = setup
    with pytest.raises(PaymentRequired, match="Insufficient credits"):
        await ledger.authorize("gen-0", key, "m/x", PLAN, PROMPT, 100)
    await ledger.grant(key.account_id, PROMPT * 500_000 + 30 * 1_500_000, "grant-1")
    with pytest.raises(PaymentRequired, match="can only afford 30") as refused:
        await ledger.authorize("gen-1", key, "m/x", PLAN, PROMPT, 100)
    assert refused.value.metadata["limit_source"] == "account"
    hold = await ledger.authorize("gen-2", key, "m/x", PLAN, PROMPT, None)
    assert hold.max_tokens == 30


async def test_free_plans_reserve_nothing_but_refuse_debt(setup, migrated_engine: AsyncEngine) -> None:
    ledger, key, records = setup
    hold = await ledger.authorize("gen-1", key, "m/free", FREE, PROMPT, None)
    assert hold.amount_pusd == 0
    await ledger.finish(hold, 0, {"id": "gen-1"})
    assert records.rows == [{"id": "gen-1"}]
    await ledger.grant(key.account_id, 10, "grant-1")
    async with migrated_engine.begin() as conn:  # a settle above its hold took the balance below zero
        await conn.execute(
            store.account_balances.update()
            .values(spent_pusd=11)
            .where(store.account_balances.c.account_id == key.account_id)
        )
    with pytest.raises(PaymentRequired, match="negative"):
        await ledger.authorize("gen-2", key, "m/free", FREE, PROMPT, None)


async def test_free_requests_read_the_balance_once_per_ttl_and_this_process_changes_at_once(
    migrated_engine: AsyncEngine,
) -> None:
    """Issue #9: a free request read the balance row twice through the async engine (credits bought,
    then the debt check), doubling its cost. Now one cached read per TTL; this process's own charges
    and grants drop the entry, so they count at once; other processes' changes once the TTL passed."""
    accounts = AccountStore(migrated_engine)
    account = await accounts.create_account("free@example.com")
    _, api_key = await accounts.create_key(account.id, "k")
    key = KeyBudget(api_key.hash, account.id)
    writer = WriteBatcher(migrated_engine)
    ttl_s = 0.4
    ledger = Ledger(migrated_engine, writer, lease_s=60, balance_ttl_s=ttl_s)
    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM account_balances" in statement:
            reads.append(statement)

    event.listen(migrated_engine.sync_engine, "before_cursor_execute", count)
    try:
        await ledger.grant(account.id, 20 * 10**6, "grant-1")
        reads.clear()
        for i in range(5):
            assert await ledger.credits_bought_pusd(account.id) == 20 * 10**6
            assert (await ledger.authorize(f"gen-free-{i}", key, "m/free", FREE, PROMPT, None)).amount_pusd == 0
        assert len(reads) == 1, reads  # ten questions, one read

        # This process's own charge above its hold takes the balance below zero: refused at once.
        hold = await ledger.authorize("gen-paid", key, "m/x", PLAN, 1, 1)
        await ledger.finish(hold, 20 * 10**6 + 1)
        with pytest.raises(PaymentRequired, match="negative"):
            await ledger.authorize("gen-free-debt", key, "m/free", FREE, PROMPT, None)
        await ledger.grant(account.id, 10, "grant-2")  # its own grant: counts at once
        await ledger.authorize("gen-free-paid-up", key, "m/free", FREE, PROMPT, None)
        assert await ledger.credits_bought_pusd(account.id) == 20 * 10**6 + 10
        async with migrated_engine.begin() as conn:  # the web app's grants and credit codes, then their signal
            await store.grant(conn, account.id, 5, "grant-3", "credit code")
        ledger.balance_changed(account.id)
        assert await ledger.credits_bought_pusd(account.id) == 20 * 10**6 + 15

        # Another process's change (here: SQL) counts once the TTL has passed.
        async with migrated_engine.begin() as conn:
            await conn.execute(
                account_balances.update().values(spent_pusd=10**9).where(account_balances.c.account_id == account.id)
            )
        await ledger.authorize("gen-free-stale", key, "m/free", FREE, PROMPT, None)
        await asyncio.sleep(ttl_s + 0.1)
        with pytest.raises(PaymentRequired, match="negative"):
            await ledger.authorize("gen-free-seen", key, "m/free", FREE, PROMPT, None)
    finally:
        event.remove(migrated_engine.sync_engine, "before_cursor_execute", count)
        await ledger.wait_finishing()
        await writer.aclose()


async def test_a_caller_that_leaves_during_the_reserve_leaves_no_hold(setup, migrated_engine: AsyncEngine) -> None:
    ledger, key, _ = setup
    await ledger.grant(key.account_id, 10**12, "grant-1")
    # Another request's hold is open, so this reserve is queued on the writer (a lone one commits
    # inside the call, with nothing to leave during).
    other = await ledger.authorize("gen-0", key, "m/x", PLAN, PROMPT, 100)
    task = asyncio.ensure_future(ledger.authorize("gen-1", key, "m/x", PLAN, PROMPT, 100))
    await asyncio.sleep(0)  # the reserve is queued on the writer
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await ledger.finish(other, 0)
    for _ in range(100):
        await asyncio.sleep(0.01)
        found = await balance(migrated_engine, key.account_id)
        if found is not None and found.reserved_pusd == 0 and not ledger.open_holds:
            break
    assert found is not None and found.reserved_pusd == 0
    async with migrated_engine.connect() as conn:
        assert (await conn.execute(select(reservations.c.ref))).all() == []


async def test_the_sweeper_voids_lapsed_leases_with_a_record(setup, migrated_engine: AsyncEngine) -> None:
    ledger, key, records = setup
    await ledger.grant(key.account_id, 10**12, "grant-1")
    await ledger.authorize("gen-1", key, "m/x", PLAN, PROMPT, 100)
    assert await ledger.void_expired(datetime.now(UTC)) == 0  # the lease is 60 s
    later = datetime.now(UTC) + timedelta(seconds=61)
    voided = await ledger.void_expired(later, record_for=lambda closed: {"id": closed.ref, "status": "void"})
    assert voided == 1 and records.rows == [{"id": "gen-1", "status": "void"}]
    found = await balance(migrated_engine, key.account_id)
    assert found is not None and (found.spent_pusd, found.reserved_pusd) == (0, 0)


async def test_a_lone_request_commits_in_place_and_concurrent_ones_share_batches(migrated_engine: AsyncEngine) -> None:
    """With no other hold open, a reserve or settle commits inside the writer's `submit` on SQLite
    (no hand-off to its task); requests that overlap still share group commits, and the money is
    the same either way."""
    accounts = AccountStore(migrated_engine)
    account = await accounts.create_account("lone@example.com")
    _, api_key = await accounts.create_key(account.id, "k")
    key = KeyBudget(api_key.hash, account.id)
    writer = WriteBatcher(migrated_engine)
    records = Records()
    ledger = Ledger(migrated_engine, writer, write_records=records, lease_s=60)
    try:
        await ledger.grant(account.id, 10**12, "grant-lone")
        for i in range(3):
            hold = await ledger.authorize(f"gen-{i}", key, "m/x", PLAN, PROMPT, 100)
            await ledger.finish(hold, 1_000, {"id": f"gen-{i}"})
        sqlite = migrated_engine.dialect.name == "sqlite"
        assert writer.inline_commits == (6 if sqlite else 0)  # 3 reserves and 3 settles
        before = writer.commits
        holds = await asyncio.gather(*(ledger.authorize(f"gen-c{i}", key, "m/x", PLAN, PROMPT, 100) for i in range(8)))
        await asyncio.gather(*(ledger.finish(hold, 1_000, {"id": hold.ref}) for hold in holds))
        assert writer.commits - before <= 3  # the first reserve alone, then one batch each
        assert writer.inline_commits <= (7 if sqlite else 0)
        found = await balance(migrated_engine, account.id)
        assert found is not None and (found.spent_pusd, found.reserved_pusd) == (11_000, 0)
        assert len(records.rows) == 11 and not ledger.open_holds
    finally:
        await ledger.wait_finishing()
        await writer.aclose()


async def test_a_slow_settle_returns_after_the_wait_and_lands_in_the_background(
    migrated_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    accounts = AccountStore(migrated_engine)
    account = await accounts.create_account("slow@example.com")
    _, api_key = await accounts.create_key(account.id, "k")
    key = KeyBudget(api_key.hash, account.id)
    writer = WriteBatcher(migrated_engine)
    ledger = Ledger(migrated_engine, writer, lease_s=60, finish_wait_s=0.3)
    try:
        await ledger.grant(account.id, 10**12, "grant-slow")
        hold = await ledger.authorize("gen-slow", key, "m/x", PLAN, PROMPT, 100)
        loop = asyncio.get_running_loop()
        async with migrated_engine.connect() as blocker:  # holds the balance row's write lock for 1.5 s
            await blocker.execute(
                account_balances.update()
                .where(account_balances.c.account_id == account.id)
                .values(updated_at=account_balances.c.updated_at)
            )
            started = loop.time()
            with caplog.at_level("WARNING", logger="polyroute.billing.ledger"):
                await ledger.finish(hold, 4_321)
            waited = loop.time() - started
            assert 0.25 <= waited < 1.2, waited  # the finish wait, not the lock
            assert "settling gen-slow is slow" in caplog.text
            assert not hold_settled(await balance(migrated_engine, account.id), 4_321)
            await asyncio.sleep(1.5 - waited)
            await blocker.rollback()
        await ledger.wait_finishing()  # the first attempt, still running, lands once the lock is gone
        assert hold_settled(await balance(migrated_engine, account.id), 4_321)
        assert not ledger.open_holds
    finally:
        await ledger.wait_finishing()
        await writer.aclose()


def hold_settled(found: store.Balance | None, charge: int) -> bool:
    assert found is not None
    return (found.spent_pusd, found.reserved_pusd) == (charge, 0)
