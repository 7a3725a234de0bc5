"""Migrations on real SQLite and PostgreSQL: to head, idempotent, reversible, race-safe."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from polyroute.accounts.store import AccountStore
from polyroute.db.engine import create_engine
from polyroute.db.migrate import _migrate, current_revision, downgrade_database, head_revision, upgrade_database
from polyroute.db.tables import metadata

SRC_DIR = Path(__file__).resolve().parents[2] / "src"


async def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def schema_differences(url: str) -> list[object]:
    engine = create_engine(url)
    opts = {"compare_type": True, "compare_server_default": True}
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync, opts=opts), metadata)
            )
    finally:
        await engine.dispose()


async def test_upgrade_creates_every_table_at_head(database_url: str) -> None:
    assert await current_revision(database_url) is None
    await upgrade_database(database_url)
    assert await current_revision(database_url) == head_revision() == "0005"
    assert {
        "accounts",
        "api_keys",
        "generations",
        "ledger_entries",
        "account_balances",
        "key_spend",
        "reservations",
        "web_sessions",
        "credit_codes",
        "instance_settings",
    } <= await table_names(database_url)


async def test_migrated_schema_matches_the_table_definitions(database_url: str) -> None:
    await upgrade_database(database_url)
    assert await schema_differences(database_url) == []


async def test_upgrading_twice_is_a_no_op(database_url: str) -> None:
    await upgrade_database(database_url)
    await upgrade_database(database_url)
    assert await current_revision(database_url) == head_revision()


async def test_downgrade_to_base_then_upgrade_again(database_url: str) -> None:
    await upgrade_database(database_url)
    await downgrade_database(database_url, "base")
    assert await current_revision(database_url) is None
    assert not {"accounts", "api_keys", "generations"} & await table_names(database_url)
    await upgrade_database(database_url)
    assert await current_revision(database_url) == head_revision()


async def test_concurrent_upgrades_in_one_process_all_succeed(database_url: str) -> None:
    await asyncio.gather(*(upgrade_database(database_url) for _ in range(4)))
    assert await current_revision(database_url) == head_revision()


async def test_processes_starting_at_once_all_migrate_successfully(database_url: str) -> None:
    script = (
        "import asyncio, sys; from polyroute.db.migrate import upgrade_database as up; asyncio.run(up(sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC_DIR)}
    command = [sys.executable, "-c", script, database_url]
    processes = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in range(5)]
    errors = [process.communicate(timeout=60)[1] for process in processes]
    assert [process.returncode for process in processes] == [0] * 5, errors
    assert await current_revision(database_url) == head_revision()


def add_nickname_by_rebuilding_accounts(connection: Connection) -> None:
    operations = Operations(MigrationContext.configure(connection))
    # SQLite copies the table and drops the original; PostgreSQL just alters it.
    recreate: Literal["always", "auto"] = "always" if connection.dialect.name == "sqlite" else "auto"
    with operations.batch_alter_table("accounts", recreate=recreate) as batch:
        batch.add_column(sa.Column("nickname", sa.Text(), nullable=True))


def insert_key_of_missing_account(connection: Connection) -> None:
    connection.execute(
        sa.text("INSERT INTO api_keys (hash, account_id, name, label) VALUES (:h, 999, 'n', 'l')"), {"h": "b" * 64}
    )


async def test_a_batch_migration_can_rebuild_a_table_that_others_reference(database_url: str) -> None:
    # Future migrations run like this one (migrate's own transaction and lock handling).
    await upgrade_database(database_url)
    engine = create_engine(database_url)
    try:
        accounts = AccountStore(engine)
        account = await accounts.create_account("parent@example.com")
        _, key = await accounts.create_key(account.id, "child")
        await _migrate(database_url, add_nickname_by_rebuilding_accounts)
        assert await accounts.find_key(key.hash) == key
        assert await accounts.get_account(account.id) == account
    finally:
        await engine.dispose()


async def test_a_migration_leaving_dangling_foreign_keys_is_rolled_back(database_url: str) -> None:
    await upgrade_database(database_url)
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await _migrate(database_url, insert_key_of_missing_account)
    engine = create_engine(database_url)
    try:
        assert await AccountStore(engine).find_key("b" * 64) is None
    finally:
        await engine.dispose()


async def test_0005_keeps_open_reservations_and_drops_the_expiry_index(database_url: str) -> None:
    """Open holds survive the rebuild (SQLite: WITHOUT ROWID), and the downgrade restores the old shape."""
    await upgrade_database(database_url, "0004")
    engine = create_engine(database_url)
    row = {
        "ref": "gen-1-open",
        "account_id": 1,
        "key_hash": "a" * 64,
        "amount_pusd": 123_456_789,
        "model": "acme/x",
        "expires_at": datetime(2030, 1, 1, tzinfo=UTC),
    }
    try:
        async with engine.begin() as conn:
            insert = "INSERT INTO reservations (ref, account_id, key_hash, amount_pusd, model, expires_at) "
            await conn.execute(
                sa.text(insert + "VALUES (:ref, :account_id, :key_hash, :amount_pusd, :model, :expires_at)"), row
            )
        await upgrade_database(database_url)

        def shape(sync: Connection) -> tuple[list[str], bool, list[tuple[object, ...]]]:
            indexes = [ix["name"] or "" for ix in inspect(sync).get_indexes("reservations")]
            rowid = True
            if sync.dialect.name == "sqlite":
                ddl = sync.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'reservations'").scalar_one()
                rowid = "WITHOUT ROWID" not in ddl.upper()
            rows = sync.exec_driver_sql("SELECT ref, amount_pusd FROM reservations").all()
            return indexes, rowid, [tuple(r) for r in rows]

        async with engine.connect() as conn:
            indexes, rowid, rows = await conn.run_sync(shape)
        assert "ix_reservations_expires_at" not in indexes
        assert rowid == (engine.dialect.name != "sqlite")  # SQLite: the rows live in the key's B-tree
        assert rows == [("gen-1-open", 123_456_789)]
        await downgrade_database(database_url, "0004")
        async with engine.connect() as conn:
            indexes, rowid, rows = await conn.run_sync(shape)
        assert "ix_reservations_expires_at" in indexes and rowid
        assert rows == [("gen-1-open", 123_456_789)]
    finally:
        await engine.dispose()
