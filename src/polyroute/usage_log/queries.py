"""Read-side queries over generation records (per-key usage for `/key`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.db.tables import generations
from polyroute.usage_log.periods import period_starts


@dataclass(frozen=True, slots=True)
class KeyUsage:
    total_pusd: int
    daily_pusd: int
    weekly_pusd: int
    monthly_pusd: int


async def key_usage(engine: AsyncEngine, key_hash: str) -> KeyUsage:
    starts = period_starts()
    cost = generations.c.cost_pusd
    created = generations.c.created_at

    def since(name: str):  # type: ignore[no-untyped-def]
        return func.coalesce(func.sum(case((created >= starts[name], cost), else_=0)), 0)

    query = select(func.coalesce(func.sum(cost), 0), since("daily"), since("weekly"), since("monthly")).where(
        generations.c.key_hash == key_hash
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).one()
    return KeyUsage(*(int(value) for value in row))
