"""The engine factory: SQLite connection settings and the data directory it creates."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from polyroute.db.engine import SQLITE_BUSY_TIMEOUT_MS, create_engine, safe_url
from polyroute.settings import load_settings


async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    settings = load_settings({"POLYROUTE_DATA_DIR": str(tmp_path / "fresh" / "data")})
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            pragmas = [
                (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "busy_timeout", "foreign_keys")
            ]
    finally:
        await engine.dispose()
    assert pragmas == ["wal", SQLITE_BUSY_TIMEOUT_MS, 1]
    assert (tmp_path / "fresh" / "data" / "polyroute.db").exists()


async def test_in_memory_sqlite_keeps_its_data_across_connections() -> None:
    engine = create_engine("sqlite://")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
    finally:
        await engine.dispose()


async def test_plain_postgres_urls_get_the_asyncpg_driver() -> None:
    engine = create_engine("postgresql://user:hunter2@db.example:5432/polyroute")
    try:
        assert engine.dialect.driver == "asyncpg"
    finally:
        await engine.dispose()


def test_safe_url_hides_the_password() -> None:
    shown = safe_url("postgresql://user:hunter2@db.example/polyroute")
    assert "hunter2" not in shown and "user" in shown and "db.example" in shown
