"""Read-side queries over generation records: daily activity per model and provider."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.db.tables import generations


@dataclass(frozen=True, slots=True)
class ActivityRow:
    day: date
    model: str
    provider: str
    usage_pusd: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


def _utc_day(dialect: str) -> ColumnElement[Any]:
    created = generations.c.created_at
    if dialect == "postgresql":
        return func.date(func.timezone("UTC", created))
    return func.date(created)  # SQLite stores UTC text: date() takes its first ten characters


async def daily_activity(
    engine: AsyncEngine, account_id: int, first_day: date, last_day: date, key_hash: str | None = None
) -> list[ActivityRow]:
    """One row per (UTC day, model, provider) of the account's generations in [first_day, last_day]."""
    day = _utc_day(engine.dialect.name).label("day")
    since = datetime.combine(first_day, time(), UTC)
    until = datetime.combine(last_day + timedelta(days=1), time(), UTC)
    query = (
        select(
            day,
            generations.c.model,
            generations.c.provider,
            func.coalesce(func.sum(generations.c.cost_pusd), 0),
            func.count(),
            func.coalesce(func.sum(generations.c.prompt_tokens), 0),
            func.coalesce(func.sum(generations.c.completion_tokens), 0),
            func.coalesce(func.sum(generations.c.reasoning_tokens), 0),
        )
        .where(
            generations.c.account_id == account_id,
            generations.c.created_at >= since,
            generations.c.created_at < until,
        )
        .group_by(day, generations.c.model, generations.c.provider)
        .order_by(day.desc(), generations.c.model, generations.c.provider)
    )
    if key_hash is not None:
        query = query.where(generations.c.key_hash == key_hash)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [ActivityRow(_as_date(row[0]), str(row[1]), str(row[2]), *(int(value) for value in row[3:])) for row in rows]


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
