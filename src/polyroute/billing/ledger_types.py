"""The ledger's value types: the paying key, a reservation's outcome, balances and key spend (pUSD)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class KeyBudget:
    """The paying key: whose account it draws on, and its own limit (None = no limit)."""

    key_hash: str
    account_id: int
    limit_pusd: int | None = None
    limit_reset: str | None = None  # "daily" | "weekly" | "monthly" | None (all time)


@dataclass(frozen=True, slots=True)
class ReserveOutcome:
    """Whether the hold was placed; for a refusal, what the account and the key could still hold."""

    reserved: bool
    account_available_pusd: int  # 0 when reserved (not read)
    key_available_pusd: int | None  # None = no limit (or reserved)

    @property
    def limited_by(self) -> str:
        key = self.key_available_pusd
        return "key" if key is not None and key < self.account_available_pusd else "account"

    @property
    def budget_pusd(self) -> int:
        key = self.key_available_pusd
        return self.account_available_pusd if key is None else min(key, self.account_available_pusd)


@dataclass(frozen=True, slots=True)
class ClosedReservation:
    ref: str
    account_id: int
    key_hash: str
    amount_pusd: int  # what was held
    model: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Balance:
    account_id: int
    credits_pusd: int
    spent_pusd: int
    reserved_pusd: int

    @property
    def balance_pusd(self) -> int:
        return self.credits_pusd - self.spent_pusd

    @property
    def available_pusd(self) -> int:
        return self.credits_pusd - self.spent_pusd - self.reserved_pusd


@dataclass(frozen=True, slots=True)
class KeySpend:
    reserved_pusd: int = 0
    spent_pusd: int = 0
    daily_pusd: int = 0
    weekly_pusd: int = 0
    monthly_pusd: int = 0

    def usage_toward_limit(self, limit_reset: str | None) -> int:
        return {"daily": self.daily_pusd, "weekly": self.weekly_pusd, "monthly": self.monthly_pusd}.get(
            limit_reset or "", self.spent_pusd
        )
