"""The one place that turns a database URL into a configured SQLAlchemy `AsyncEngine`.

SQLite (the embedded default) gets WAL, a busy timeout and enforced foreign keys on every
connection; PostgreSQL goes through asyncpg with a bounded, pre-pinged pool.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from polyroute.settings import Settings, normalize_database_url

SQLITE_BUSY_TIMEOUT_MS = 5000
PG_POOL_SIZE = 10
PG_MAX_OVERFLOW = 20
PG_POOL_TIMEOUT_S = 10.0
PG_CONNECT_TIMEOUT_S = 5.0
PG_COMMAND_TIMEOUT_S = 30.0
PG_POOL_RECYCLE_S = 1800


def create_engine(target: Settings | str) -> AsyncEngine:
    """An `AsyncEngine` for `Settings.database_url` or a plain URL (`postgresql://`, `sqlite:///`)."""
    url = target.database_url if isinstance(target, Settings) else normalize_database_url(target)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return _postgres_engine(url)


def safe_url(url: str) -> str:
    """The URL with any password masked, fit for messages and logs."""
    return make_url(normalize_database_url(url)).render_as_string(hide_password=True)


def register_sqlite_adapters() -> None:
    """Bind None and bools without the sqlite3 module's adaptation search.

    sqlite3 binds int, float, str and bytearray directly; any other value (None and bools
    included) goes through its PEP 246 adaptation: a registry lookup and, on a miss, a failed
    `__adapt__` lookup on its protocol type that formats and then discards an AttributeError.
    A chat request binds about ten Nones and bools (issue #9). Registered adapters answer from
    the registry: None stays None (bound as NULL) and a bool becomes the int sqlite3 binds
    anyway, so what is stored does not change (tests/unit/db/test_sqlite_adapters.py). Global
    to the process's sqlite3 module, and idempotent.
    """
    sqlite3.register_adapter(type(None), _NOTHING.get)  # a C callable: {}.get(None) is None
    sqlite3.register_adapter(bool, int)


_NOTHING: dict[None, None] = {}


def _sqlite_engine(url: str) -> AsyncEngine:
    register_sqlite_adapters()
    database = make_url(url).database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    options: dict[str, Any] = {}
    if in_memory:
        # Each new connection to :memory: is a new, empty database: keep exactly one.
        options["poolclass"] = StaticPool
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, **options)
    event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
    return engine


def configure_sqlite_sync_engine(engine: Engine) -> Engine:
    """The same per-connection settings for a sync (pysqlite) engine on the same file (the writer's)."""
    register_sqlite_adapters()
    event.listen(engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run while one writer commits; busy_timeout makes a second writer wait
    # instead of failing at once; SQLite leaves foreign keys off unless asked, per connection.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # first: WAL switch may wait
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across crashes in WAL mode
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Switching a new file to WAL needs an exclusive lock, and SQLite may refuse it at once
    (no busy handler) while another connection is mid-transaction: retry for a while.
    Once switched, the mode is stored in the file and later calls are no-ops."""
    for _ in range(100):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(0.05)
    cursor.execute("PRAGMA journal_mode=WAL")


def _postgres_engine(url: str) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=PG_POOL_SIZE,
        max_overflow=PG_MAX_OVERFLOW,
        pool_timeout=PG_POOL_TIMEOUT_S,
        pool_recycle=PG_POOL_RECYCLE_S,
        pool_pre_ping=True,  # survive a PostgreSQL restart without failing the next request
        connect_args={
            "server_settings": {"application_name": "polyroute"},
            # A partitioned or half-dead server must fail requests, not hang them (asyncpg waits 60 s
            # to connect and forever on a statement by default).
            "timeout": PG_CONNECT_TIMEOUT_S,
            "command_timeout": PG_COMMAND_TIMEOUT_S,
        },
    )
