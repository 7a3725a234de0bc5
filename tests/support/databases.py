"""Fresh, empty databases for tests: a SQLite file, or a throwaway PostgreSQL database.

PostgreSQL comes from POLYROUTE_TEST_PG_URL (default: local server, user postgres). When it is
unreachable the test fails with a message saying so: a missing server must never look green.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from polyroute.settings import normalize_database_url

DEFAULT_TEST_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_KINDS = ("sqlite", "postgres")


def admin_pg_url() -> str:
    """A URL of the test PostgreSQL server whose user may create databases."""
    return os.environ.get("POLYROUTE_TEST_PG_URL") or DEFAULT_TEST_PG_URL


@asynccontextmanager
async def fresh_database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """Yield the async SQLAlchemy URL of a new, empty database of `kind`; drop it afterwards."""
    if kind == "sqlite":
        yield normalize_database_url(f"sqlite:///{tmp_path / 'polyroute-test.db'}")
    elif kind == "postgres":
        async with _fresh_pg_database() as url:
            yield url
    else:
        raise ValueError(f"unknown database kind {kind!r}; expected one of {DATABASE_KINDS}")


@asynccontextmanager
async def _fresh_pg_database() -> AsyncIterator[str]:
    admin = make_url(normalize_database_url(admin_pg_url()))
    admin_dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"polyroute_t_{secrets.token_hex(6)}"
    conn = await _connect_or_fail(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await _connect_or_fail(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def _connect_or_fail(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
    shown = make_url(dsn).render_as_string(hide_password=True)
    pytest.fail(
        f"PostgreSQL is unreachable at {shown} ({reason}). Start it, or point POLYROUTE_TEST_PG_URL "
        "at a server where this user may CREATE DATABASE.",
        pytrace=False,
    )
