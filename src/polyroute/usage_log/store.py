"""GenerationStore: append generation records, read one back by id.

Rows are plain dicts keyed by `generations` column names (see `polyroute.db.tables`). The gateway
writes each record as a unit of work inside the transaction that settles the request's money
(`insert_work`), so a record exists exactly when its request was settled; `insert_many` is the
one-round-trip bulk form for tools and tests.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.db.prepared import Prepared, PreparedSet, RawCursor
from polyroute.db.tables import generations
from polyroute.db.write_batcher import SyncWork

_COLUMNS = frozenset(generations.c.keys())
_ALL_COLUMNS = tuple(generations.c.keys())
# Built once (SQLAlchemy caches the compiled form per statement object): by "is PostgreSQL".
_INSERT_OR_KEEP = {
    False: sqlite.insert(generations).on_conflict_do_nothing(),
    True: postgresql.insert(generations).on_conflict_do_nothing(),
}
# The same statement with every column, compiled once and run on the DBAPI cursor (db/prepared.py, ADR 0004).
_FAST_INSERT_OR_KEEP = PreparedSet(
    lambda dialect: Prepared(_INSERT_OR_KEEP[dialect.name == "postgresql"], dialect, _ALL_COLUMNS)
)


class GenerationStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def insert_many(self, rows: list[dict[str, Any]]) -> None:
        """Insert all rows with one executemany in one transaction (all or nothing)."""
        if not rows:
            return
        async with self._engine.begin() as conn:
            await conn.execute(generations.insert(), _uniform(rows))

    @staticmethod
    def insert_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Write records inside the caller's transaction; a record whose id is already written wins."""
        if not rows:
            return
        RawCursor(conn).executemany(_FAST_INSERT_OR_KEEP.for_dialect(conn.dialect), _complete(rows))

    @classmethod
    def insert_work(cls, row: dict[str, Any]) -> SyncWork[None]:
        """One record as a unit of work for the write batcher."""
        _uniform([row])  # refuse unknown columns before the transaction
        return SyncWork(lambda conn: cls.insert_rows(conn, [row]))

    async def get(self, generation_id: str) -> dict[str, Any] | None:
        query = select(generations).where(generations.c.id == generation_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else dict(row._mapping)


def _uniform(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every row the same keys: executemany compiles one statement from the first row."""
    keys = set().union(*rows)
    unknown = keys - _COLUMNS
    if unknown:
        raise ValueError(f"unknown generation column(s): {', '.join(sorted(unknown))}")
    if all(len(row) == len(keys) for row in rows):
        return rows
    filled = {key: _default(key) for key in keys}
    return [{**filled, **row} for row in rows]


def _complete(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every column in every row: what a row leaves out gets the column's default, as Core would give it
    (callable defaults such as `created_at` evaluated once per row)."""
    unknown = set().union(*rows) - _COLUMNS
    if unknown:
        raise ValueError(f"unknown generation column(s): {', '.join(sorted(unknown))}")
    completed = []
    for row in rows:
        if len(row) == len(_ALL_COLUMNS):
            completed.append(row)
            continue
        filled = dict(row)
        for key in _ALL_COLUMNS:
            if key not in filled:
                filled[key] = _default(key)
        completed.append(filled)
    return completed


def _default(key: str) -> Any:
    default = generations.c[key].default
    if default is None:
        return None
    if default.is_callable:
        return default.arg(None)  # type: ignore[attr-defined]
    return default.arg  # type: ignore[attr-defined]
