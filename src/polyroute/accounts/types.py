"""Account and API-key records as the core sees them (no plaintext key is ever stored)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    email: str
    is_admin: bool
    created_at: datetime
    default_model: str | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key by its public id: `hash` is the SHA-256 hex of the key string."""

    hash: str
    account_id: int
    name: str
    label: str  # masked form, e.g. "sk-pr-v1-0e6...1c96"
    is_management: bool
    disabled: bool
    created_at: datetime
    updated_at: datetime | None = None
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    limit_pusd: int | None = None  # spending limit in pUSD, None = unlimited
    limit_reset: str | None = None  # "daily" | "weekly" | "monthly" | None
    rpm: int | None = None  # requests/minute limit of this key; None = the instance default, 0 = none
    tpm: int | None = None  # tokens/minute limit of this key; None = the instance default, 0 = none

    @property
    def usable(self) -> bool:
        return not self.disabled and self.revoked_at is None
