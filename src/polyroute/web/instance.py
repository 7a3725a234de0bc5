"""Instance-wide web settings kept in the database (so every worker sees them): open sign-up."""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.db.tables import accounts, instance_settings

SIGNUP_OPEN = "signup_open"


class InstanceSettings:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def signup_open(self) -> bool:
        query = select(instance_settings.c.value).where(instance_settings.c.name == SIGNUP_OPEN)
        async with self._engine.connect() as conn:
            value = (await conn.execute(query)).scalar_one_or_none()
        return value != "false"  # open unless the operator turned it off

    async def set_signup_open(self, is_open: bool) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(instance_settings).where(instance_settings.c.name == SIGNUP_OPEN))
            await conn.execute(insert(instance_settings).values(name=SIGNUP_OPEN, value="true" if is_open else "false"))

    async def account_count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(accounts))).scalar_one())
