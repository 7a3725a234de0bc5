"""db/prepared.py on SQLite and PostgreSQL: a statement run on the DBAPI cursor writes exactly what SQLAlchemy
Core writes (same bind processing, same defaults), reads back through the same result processing, and fails
with the same SQLAlchemy exceptions (a lock conflict is still recognized as one)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, delete, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.db.prepared import Prepared, RawCursor
from polyroute.db.tables import generations, ledger_entries, reservations
from polyroute.db.write_batcher import is_lock_conflict

ENTRY_COLUMNS = ("ref", "kind", "account_id", "key_hash", "amount_pusd", "note", "created_at")
MOMENT = datetime(2026, 12, 3, 9, 30, 15, 123456, tzinfo=UTC)


def entry(ref: str, moment: datetime = MOMENT) -> dict[str, Any]:
    return {
        "ref": ref,
        "kind": "settle",
        "account_id": 7,
        "key_hash": "k" * 64,
        "amount_pusd": 10**15 + 1,
        "note": None,
        "created_at": moment,
    }


async def test_a_prepared_insert_stores_what_core_stores(migrated_engine: AsyncEngine) -> None:
    # The same instant given in another zone is stored as the same UTC value (the bind processor ran).
    other_zone = MOMENT.astimezone(datetime.now().astimezone().tzinfo or UTC) + timedelta(0)

    def write(conn: Connection) -> None:
        conn.execute(insert(ledger_entries), [entry("core")])
        prepared = Prepared(insert(ledger_entries), conn.dialect, ENTRY_COLUMNS)
        RawCursor(conn).executemany(prepared, [entry("raw", other_zone)])

    async with migrated_engine.begin() as conn:
        await conn.run_sync(write)
    columns = "kind, account_id, key_hash, amount_pusd, note, created_at"
    async with migrated_engine.connect() as conn:
        # Raw driver rows: on SQLite, the stored text itself (what `expires_at < :before` compares).
        rows = (await conn.exec_driver_sql(f"SELECT ref, {columns} FROM ledger_entries ORDER BY ref")).all()  # noqa: S608
        typed = (await conn.execute(select(ledger_entries.c.created_at))).scalars().all()
    assert [row[0] for row in rows] == ["core", "raw"]
    assert tuple(rows[0][1:]) == tuple(rows[1][1:])
    assert typed == [MOMENT, MOMENT]


async def test_defaults_are_filled_as_core_fills_them(migrated_engine: AsyncEngine) -> None:
    minimal = {"id": "gen-raw", "account_id": 1, "key_hash": "k" * 64, "model": "m/x", "provider": "p"}
    minimal |= {"upstream_model": None, "status": "ok", "finish_reason": None, "native_finish_reason": None}
    minimal |= {"latency_ms": None, "ttft_ms": None, "http_referer": None, "app_title": None, "error_code": None}
    before = datetime.now(UTC)

    def write(conn: Connection) -> None:
        prepared = Prepared(insert(generations), conn.dialect, tuple(minimal))  # as Core compiles it
        RawCursor(conn).executemany(prepared, [minimal])

    async with migrated_engine.begin() as conn:
        await conn.run_sync(write)
    async with migrated_engine.connect() as conn:
        row = (await conn.execute(select(generations))).one()
    assert row.streamed is False and (row.prompt_tokens, row.completion_tokens, row.cost_pusd) == (0, 0, 0)
    assert before <= row.created_at <= datetime.now(UTC) and row.created_at.tzinfo is not None


async def test_returned_rows_go_through_result_processing(migrated_engine: AsyncEngine) -> None:
    hold = {"ref": "gen-1", "account_id": 3, "key_hash": "k" * 64, "amount_pusd": 5, "model": "m/x"}
    hold |= {"created_at": MOMENT, "expires_at": MOMENT + timedelta(seconds=60)}

    def close(conn: Connection) -> list[tuple[Any, ...]]:
        conn.execute(insert(reservations), [hold])
        statement = delete(reservations).where(reservations.c.ref == "gen-1").returning(*reservations.c)
        prepared = Prepared(statement, conn.dialect)
        cursor = RawCursor(conn)
        cursor.execute(prepared, {})
        return cursor.fetchall(prepared)

    async with migrated_engine.begin() as conn:
        rows = await conn.run_sync(close)
    assert rows == [tuple(hold.values())]
    assert rows[0][5].tzinfo is not None


async def test_naive_datetimes_are_refused(migrated_engine: AsyncEngine) -> None:
    def write(conn: Connection) -> None:
        prepared = Prepared(insert(ledger_entries), conn.dialect, ENTRY_COLUMNS)
        RawCursor(conn).executemany(prepared, [entry("naive", MOMENT.replace(tzinfo=None))])

    async with migrated_engine.begin() as conn:
        with pytest.raises(ValueError, match="naive datetime"):
            await conn.run_sync(write)


async def test_driver_errors_arrive_as_sqlalchemy_errors(migrated_engine: AsyncEngine) -> None:
    def write_twice(conn: Connection) -> None:
        prepared = Prepared(insert(ledger_entries), conn.dialect, ENTRY_COLUMNS)
        cursor = RawCursor(conn)
        cursor.executemany(prepared, [entry("twice")])
        cursor.executemany(prepared, [entry("twice")])  # unique (ref, kind)

    async with migrated_engine.begin() as conn:
        with pytest.raises(IntegrityError):
            await conn.run_sync(write_twice)


def test_a_lock_conflict_is_still_one(tmp_path: Path) -> None:
    """The writer runs SQLite batches with no busy timeout and re-runs them on its thread on a lock
    conflict: that only works if the raw path's error is recognized as one."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.commit()
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    engine = create_engine(f"sqlite+pysqlite:///{path}", connect_args={"timeout": 0})
    try:
        with engine.connect() as conn:
            prepared = Prepared(text("INSERT INTO t VALUES (:x)"), conn.dialect)
            with pytest.raises(DBAPIError) as raised:
                RawCursor(conn).execute(prepared, {"x": 2})
            assert is_lock_conflict(raised.value)
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
