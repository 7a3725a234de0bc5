"""The ledger's SQL on real SQLite and PostgreSQL: conditional reservations, exactly-once closing, key limits."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.accounts.store import AccountStore
from polyroute.billing import ledger_store as store
from polyroute.billing.ledger_store import KeyBudget
from polyroute.db.engine import create_engine
from polyroute.db.tables import ledger_entries, reservations
from polyroute.db.write_batcher import WriteBatcher

TODAY = date(2026, 9, 2)  # a Wednesday
LATER = datetime.now(UTC) + timedelta(hours=1)


async def new_key(engine: AsyncEngine, email: str = "a@example.com", **limits: object) -> KeyBudget:
    accounts = AccountStore(engine)
    account = await accounts.ensure_account(email)
    _, key = await accounts.create_key(account.id, "k", **limits)  # type: ignore[arg-type]
    return KeyBudget(key.hash, account.id, key.limit_pusd, key.limit_reset)


async def grant(engine: AsyncEngine, account_id: int, amount: int, ref: str = "grant-1") -> store.Balance:
    async with engine.begin() as conn:
        return await store.grant(conn, account_id, amount, ref, None)


async def reserve(engine: AsyncEngine, key: KeyBudget, ref: str, amount: int, today: date = TODAY):
    async with engine.begin() as conn:
        return await store.reserve(
            conn, ref=ref, key=key, amount_pusd=amount, model="m/x", expires_at=LATER, today=today
        )


async def close(engine: AsyncEngine, ref: str, kind: str, charge: int = 0, today: date = TODAY, **kw):
    async with engine.begin() as conn:
        return await store.close(conn, ref, kind=kind, charge_pusd=charge, today=today, **kw)


async def balance(engine: AsyncEngine, account_id: int) -> store.Balance:
    async with engine.connect() as conn:
        found = await store.read_balance(conn, account_id)
    assert found is not None
    return found


async def test_reserve_then_settle_moves_the_hold_to_spent(migrated_engine: AsyncEngine) -> None:
    key = await new_key(migrated_engine)
    await grant(migrated_engine, key.account_id, 1_000)
    outcome = await reserve(migrated_engine, key, "gen-1", 600)
    assert outcome.reserved
    assert (await balance(migrated_engine, key.account_id)).reserved_pusd == 600
    closed = await close(migrated_engine, "gen-1", "settle", 250)
    assert closed is not None and closed.amount_pusd == 600
    after = await balance(migrated_engine, key.account_id)
    assert (after.credits_pusd, after.spent_pusd, after.reserved_pusd, after.balance_pusd) == (1_000, 250, 0, 750)


async def test_a_reservation_beyond_the_available_balance_changes_nothing(migrated_engine: AsyncEngine) -> None:
    key = await new_key(migrated_engine)
    await grant(migrated_engine, key.account_id, 1_000)
    assert (await reserve(migrated_engine, key, "gen-1", 700)).reserved
    refused = await reserve(migrated_engine, key, "gen-2", 301)
    assert not refused.reserved and refused.account_available_pusd == 300 and refused.limited_by == "account"
    assert (await balance(migrated_engine, key.account_id)).reserved_pusd == 700
    async with migrated_engine.connect() as conn:
        refs = (await conn.execute(select(reservations.c.ref))).scalars().all()
    assert refs == ["gen-1"]


async def test_an_account_without_credits_cannot_reserve(migrated_engine: AsyncEngine) -> None:
    key = await new_key(migrated_engine)
    outcome = await reserve(migrated_engine, key, "gen-1", 1)
    assert not outcome.reserved and outcome.budget_pusd == 0


async def test_each_reservation_closes_exactly_once(migrated_engine: AsyncEngine) -> None:
    key = await new_key(migrated_engine)
    await grant(migrated_engine, key.account_id, 1_000)
    await reserve(migrated_engine, key, "gen-1", 500)
    assert await close(migrated_engine, "gen-1", "release") is not None
    assert await close(migrated_engine, "gen-1", "settle", 100) is None  # too late: nothing moves
    assert await close(migrated_engine, "gen-1", "void") is None
    after = await balance(migrated_engine, key.account_id)
    assert (after.spent_pusd, after.reserved_pusd) == (0, 0)
    async with migrated_engine.connect() as conn:
        kinds = (await conn.execute(select(ledger_entries.c.kind).where(ledger_entries.c.ref == "gen-1"))).scalars()
        assert sorted(kinds) == ["release", "reserve"]


async def test_void_only_takes_expired_reservations(migrated_engine: AsyncEngine) -> None:
    key = await new_key(migrated_engine)
    await grant(migrated_engine, key.account_id, 1_000)
    await reserve(migrated_engine, key, "gen-1", 500)
    assert await close(migrated_engine, "gen-1", "void", expired_before=datetime.now(UTC)) is None
    assert await close(migrated_engine, "gen-1", "void", expired_before=LATER + timedelta(seconds=1)) is not None
    assert (await balance(migrated_engine, key.account_id)).reserved_pusd == 0


async def test_a_settle_above_the_hold_is_charged_in_full(migrated_engine: AsyncEngine) -> None:
    """The prompt estimate was too low: the real cost is the money of record, even below zero."""
    key = await new_key(migrated_engine)
    await grant(migrated_engine, key.account_id, 100)
    await reserve(migrated_engine, key, "gen-1", 100)
    await close(migrated_engine, "gen-1", "settle", 130)
    after = await balance(migrated_engine, key.account_id)
    assert (after.balance_pusd, after.reserved_pusd) == (-30, 0)


async def test_a_key_limit_caps_its_reservations_per_period(migrated_engine: AsyncEngine) -> None:
    key = await new_key(migrated_engine, limit_pusd=1_000, limit_reset="daily")
    await grant(migrated_engine, key.account_id, 10_000)
    assert (await reserve(migrated_engine, key, "gen-1", 600)).reserved
    refused = await reserve(migrated_engine, key, "gen-2", 500)
    assert not refused.reserved and refused.limited_by == "key" and refused.key_available_pusd == 400
    assert (await balance(migrated_engine, key.account_id)).reserved_pusd == 600  # the account hold was undone
    await close(migrated_engine, "gen-1", "settle", 600)
    assert not (await reserve(migrated_engine, key, "gen-2", 500)).reserved  # the day's 600 are spent
    tomorrow = TODAY + timedelta(days=1)
    assert (await reserve(migrated_engine, key, "gen-3", 1_000, today=tomorrow)).reserved  # a new day


async def test_a_limit_larger_than_the_key_ever_saw_is_refused_even_without_a_spend_row(
    migrated_engine: AsyncEngine,
) -> None:
    key = await new_key(migrated_engine, limit_pusd=100)
    await grant(migrated_engine, key.account_id, 10_000)
    assert not (await reserve(migrated_engine, key, "gen-1", 101)).reserved
    assert (await balance(migrated_engine, key.account_id)).reserved_pusd == 0


async def test_key_spend_counts_each_period_from_its_start(migrated_engine: AsyncEngine) -> None:
    key = await new_key(migrated_engine)
    await grant(migrated_engine, key.account_id, 10_000)
    monday, sunday, next_monday = date(2026, 8, 31), date(2026, 9, 6), date(2026, 9, 7)
    for ref, day, charge in (("gen-1", monday, 100), ("gen-2", sunday, 20), ("gen-3", next_monday, 3)):
        await reserve(migrated_engine, key, ref, 200, today=day)
        await close(migrated_engine, ref, "settle", charge, today=day)
    async with migrated_engine.connect() as conn:
        spend = await store.read_key_spend(conn, key.key_hash, next_monday)
        earlier = await store.read_key_spend(conn, key.key_hash, sunday)
    assert (spend.spent_pusd, spend.daily_pusd, spend.weekly_pusd, spend.monthly_pusd) == (123, 3, 3, 23)
    assert earlier.daily_pusd == 0  # the counters now belong to a later day; an earlier one reads none


async def test_grants_are_idempotent_per_reference(migrated_engine: AsyncEngine) -> None:
    key = await new_key(migrated_engine)
    await grant(migrated_engine, key.account_id, 500, ref="grant-x")
    again = await grant(migrated_engine, key.account_id, 500, ref="grant-x")  # a re-run adds nothing
    assert again.credits_pusd == 500
    with pytest.raises(ValueError, match="another account or amount"):
        await grant(migrated_engine, key.account_id, 501, ref="grant-x")
    assert (await balance(migrated_engine, key.account_id)).credits_pusd == 500


async def test_concurrent_writers_in_separate_processes_never_overspend(database_url: str) -> None:
    """Two engines (as two worker processes would), each with its own group-commit writer, race for
    one balance: exactly as many reservations succeed as the balance covers."""
    from polyroute.db.migrate import upgrade_database

    await upgrade_database(database_url)
    engines = [create_engine(database_url) for _ in range(2)]
    writers = [WriteBatcher(engine) for engine in engines]
    try:
        key = await new_key(engines[0])
        await grant(engines[0], key.account_id, 10 * 700 + 699)

        async def attempt(index: int) -> bool:
            async def work(conn):  # type: ignore[no-untyped-def]
                return await store.reserve(
                    conn, ref=f"gen-{index}", key=key, amount_pusd=700, model="m", expires_at=LATER, today=TODAY
                )

            return (await writers[index % 2].run(work)).reserved

        results = await asyncio.gather(*(attempt(i) for i in range(40)))
        assert sum(results) == 10
        after = await balance(engines[0], key.account_id)
        assert after.reserved_pusd == 7_000 and after.available_pusd == 699
    finally:
        for writer in writers:
            await writer.aclose()
        for engine in engines:
            await engine.dispose()


async def test_a_batch_closes_each_ref_once_with_its_first_request(migrated_engine: AsyncEngine) -> None:
    """One batch (one statement on PostgreSQL): settle, release, a duplicate ref and an unknown ref,
    over two accounts; totals, key spend and entries agree with closing them one by one."""
    a = await new_key(migrated_engine, "a@example.com")
    b = await new_key(migrated_engine, "b@example.com", limit_pusd=10_000, limit_reset="daily")
    await grant(migrated_engine, a.account_id, 10_000, "grant-a")
    await grant(migrated_engine, b.account_id, 10_000, "grant-b")
    for key, ref in ((a, "gen-1"), (a, "gen-2"), (b, "gen-3")):
        assert (await reserve(migrated_engine, key, ref, 1_000)).reserved
    requests = [
        store.CloseRequest("gen-1", "settle", 1_500),  # above the hold: charged in full
        store.CloseRequest("gen-2", "release"),
        store.CloseRequest("gen-1", "settle", 7),  # the same ref again: only the first closes it
        store.CloseRequest("gen-3", "settle", 400),
        store.CloseRequest("gen-9", "release"),  # never reserved
    ]
    async with migrated_engine.begin() as conn:
        closed = await store.close_many(conn, requests, TODAY)
    assert [c is not None for c in closed] == [True, True, False, True, False]
    assert closed[0] is not None and (closed[0].ref, closed[0].amount_pusd, closed[0].key_hash) == (
        "gen-1",
        1_000,
        a.key_hash,
    )
    after_a, after_b = await balance(migrated_engine, a.account_id), await balance(migrated_engine, b.account_id)
    assert (after_a.spent_pusd, after_a.reserved_pusd) == (1_500, 0)
    assert (after_b.spent_pusd, after_b.reserved_pusd) == (400, 0)
    async with migrated_engine.connect() as conn:
        spend_a = await store.read_key_spend(conn, a.key_hash, TODAY)
        spend_b = await store.read_key_spend(conn, b.key_hash, TODAY)
        entries = (
            await conn.execute(select(ledger_entries.c.ref, ledger_entries.c.kind, ledger_entries.c.amount_pusd))
        ).all()
    assert (spend_a.reserved_pusd, spend_a.spent_pusd, spend_a.daily_pusd) == (0, 1_500, 1_500)
    assert (spend_b.reserved_pusd, spend_b.daily_pusd, spend_b.weekly_pusd, spend_b.monthly_pusd) == (0, 400, 400, 400)
    closing = sorted((ref, kind, amount) for ref, kind, amount in entries if kind not in ("grant", "reserve"))
    assert closing == [("gen-1", "settle", 1_500), ("gen-2", "release", 1_000), ("gen-3", "settle", 400)]
