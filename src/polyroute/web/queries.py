"""Read queries behind the activity, credits and rankings pages (always scoped to one account, except rankings)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.db.tables import generations, ledger_entries

MAX_TABLE_ROWS = 200
MAX_CSV_ROWS = 100_000


@dataclass(frozen=True, slots=True)
class GenerationFilter:
    model: str | None = None
    key_hash: str | None = None
    status: str | None = None
    days: int = 30


def _day(engine: AsyncEngine) -> ColumnElement[Any]:
    created = generations.c.created_at
    if engine.dialect.name == "postgresql":
        return func.date(func.timezone("UTC", created))
    return func.date(created)


def _since(days: int) -> datetime:
    return datetime.combine(datetime.now(UTC).date() - timedelta(days=days - 1), time(), UTC)


async def daily_series(engine: AsyncEngine, account_id: int, group_by: str, days: int) -> list[dict[str, Any]]:
    """Per UTC day and group (`model` or `key`): spend (pUSD), tokens and requests."""
    column = generations.c.key_hash if group_by == "key" else generations.c.model
    day = _day(engine).label("day")
    query = (
        select(
            day,
            column.label("grp"),
            func.coalesce(func.sum(generations.c.cost_pusd), 0).label("cost"),
            func.coalesce(func.sum(generations.c.prompt_tokens + generations.c.completion_tokens), 0).label("tokens"),
            func.count().label("requests"),
        )
        .where(generations.c.account_id == account_id, generations.c.created_at >= _since(days))
        .group_by(day, column)
        .order_by(day)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        {
            "day": str(row.day)[:10],
            "group": str(row.grp),
            "cost": int(row.cost),
            "tokens": int(row.tokens),
            "requests": int(row.requests),
        }
        for row in rows
    ]


async def list_generations(
    engine: AsyncEngine, account_id: int, where: GenerationFilter, limit: int = MAX_TABLE_ROWS
) -> list[dict[str, Any]]:
    query = (
        select(generations)
        .where(generations.c.account_id == account_id, generations.c.created_at >= _since(where.days))
        .order_by(generations.c.created_at.desc(), generations.c.id)
        .limit(limit)
    )
    if where.model:
        query = query.where(generations.c.model == where.model)
    if where.key_hash:
        query = query.where(generations.c.key_hash == where.key_hash)
    if where.status:
        query = query.where(generations.c.status == where.status)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [dict(row._mapping) for row in rows]


async def ledger_history(engine: AsyncEngine, account_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """Grants and settled charges, newest first (reservations and releases are bookkeeping, not shown)."""
    query = (
        select(ledger_entries)
        .where(ledger_entries.c.account_id == account_id, ledger_entries.c.kind.in_(("grant", "settle")))
        .order_by(ledger_entries.c.created_at.desc(), ledger_entries.c.id.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [dict(row._mapping) for row in rows]


async def rankings(engine: AsyncEngine, days: int = 7, limit: int = 50) -> list[dict[str, Any]]:
    """Models by tokens served on this instance in the last `days` days (every account)."""
    tokens = func.coalesce(func.sum(generations.c.prompt_tokens + generations.c.completion_tokens), 0)
    query = (
        select(generations.c.model, tokens.label("tokens"), func.count().label("requests"))
        .where(generations.c.created_at >= _since(days), generations.c.status == "ok")
        .group_by(generations.c.model)
        .order_by(tokens.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [{"model": row.model, "tokens": int(row.tokens), "requests": int(row.requests)} for row in rows]


def day_range(days: int) -> list[date]:
    today = datetime.now(UTC).date()
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
