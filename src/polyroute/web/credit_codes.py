"""Redeemable credit codes: an admin creates them (each shown once), a user redeems one for a grant.

Only the code's SHA-256 is stored. Redeeming marks the code and grants the credits in one
transaction, so a code pays out at most once even under concurrent redemptions.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.billing import ledger_store
from polyroute.db.tables import credit_codes, utc_now

CODE_PREFIX = "prc-"


@dataclass(frozen=True, slots=True)
class CreditCode:
    label: str
    amount_pusd: int
    created_at: datetime
    redeemed_by: int | None
    redeemed_at: datetime | None


def code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().encode("utf-8")).hexdigest()


class CreditCodeStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, amount_pusd: int, created_by: int) -> str:
        if amount_pusd <= 0:
            raise ValueError("a credit code must be worth a positive amount")
        code = CODE_PREFIX + secrets.token_hex(12)
        values = {
            "code_hash": code_hash(code),
            "label": f"{code[:8]}...{code[-4:]}",
            "amount_pusd": amount_pusd,
            "created_by": created_by,
            "created_at": utc_now(),
        }
        async with self._engine.begin() as conn:
            await conn.execute(insert(credit_codes).values(values))
        return code

    async def list(self) -> list[CreditCode]:
        query = select(credit_codes).order_by(credit_codes.c.created_at.desc()).limit(200)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            CreditCode(row.label, int(row.amount_pusd), row.created_at, row.redeemed_by, row.redeemed_at)
            for row in rows
        ]

    async def redeem(self, code: str, account_id: int) -> int | None:
        """The amount granted, or None for an unknown or already redeemed code."""
        hashed = code_hash(code)
        claim = (
            update(credit_codes)
            .where(credit_codes.c.code_hash == hashed, credit_codes.c.redeemed_by.is_(None))
            .values(redeemed_by=account_id, redeemed_at=utc_now())
            .returning(credit_codes.c.amount_pusd)
        )
        async with self._engine.begin() as conn:
            amount = (await conn.execute(claim)).scalar_one_or_none()
            if amount is None:
                return None
            await ledger_store.grant(conn, account_id, int(amount), f"code-{hashed}", "credit code")
        return int(amount)
