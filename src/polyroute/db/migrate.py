"""Bring a database to the newest schema with Alembic, from code: no alembic.ini needed.

Safe to call on every start: an up-to-date database is left alone, and concurrent callers are
serialised (PostgreSQL: a session advisory lock; SQLite: an immediate write transaction).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from polyroute.db.engine import create_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Any fixed 64-bit number works; this one spells "polyrout" so it is recognisable in pg_locks.
PG_MIGRATION_LOCK_ID = int.from_bytes(b"polyrout", "big")


def alembic_config(connection: Connection | None = None) -> Config:
    """An in-memory Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade_database(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision` (default: the newest)."""
    await _migrate(url, lambda connection: command.upgrade(alembic_config(connection), revision))


async def downgrade_database(url: str, revision: str) -> None:
    """Migrate down to `revision` ("base" drops everything): for operators and tests."""
    await _migrate(url, lambda connection: command.downgrade(alembic_config(connection), revision))


async def current_revision(url: str) -> str | None:
    """The revision the database is at, None for an empty database."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
    finally:
        await engine.dispose()


async def _migrate(url: str, work: Callable[[Connection], None]) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                await _with_pg_lock(connection, work)
            else:
                await _in_transaction(connection, work)
    finally:
        await engine.dispose()


async def _in_transaction(connection: AsyncConnection, work: Callable[[Connection], None]) -> None:
    sqlite = connection.dialect.name == "sqlite"
    try:
        if sqlite:
            await _begin_sqlite_migration(connection)
        await connection.run_sync(work)
        if sqlite:
            await _check_sqlite_foreign_keys(connection)
        await connection.commit()
    except BaseException:
        await connection.rollback()
        raise


async def _begin_sqlite_migration(connection: AsyncConnection) -> None:
    # SQLite's recipe for schema changes: foreign keys off, or the table rebuilds of batch
    # mode (DROP TABLE parent) fail or cascade; re-checked before commit instead. The pragma
    # only works outside a transaction and this engine is disposed right after.
    await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    # Take the write lock before reading alembic_version, so a second process waits
    # (busy_timeout) and then sees the finished schema instead of racing to create it.
    await connection.exec_driver_sql("BEGIN IMMEDIATE")


async def _check_sqlite_foreign_keys(connection: AsyncConnection) -> None:
    violations = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
    if violations:
        tables = sorted({str(row[0]) for row in violations})
        raise RuntimeError(f"migration left rows with dangling foreign keys in {', '.join(tables)}")


async def _with_pg_lock(connection: AsyncConnection, work: Callable[[Connection], None]) -> None:
    # A session lock, committed before the migration starts and released only after it has
    # committed: a waiting process can never read the schema version mid-migration.
    await connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": PG_MIGRATION_LOCK_ID})
    await connection.commit()
    try:
        await _in_transaction(connection, work)
    finally:
        await connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": PG_MIGRATION_LOCK_ID})
        await connection.commit()
