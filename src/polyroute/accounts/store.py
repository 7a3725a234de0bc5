"""AccountStore: accounts and API keys in SQL (SQLAlchemy Core over an AsyncEngine).

One statement per call on the hot path (`find_key`); plaintext keys leave `create_key` once
and are never stored, only their SHA-256 hash.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.accounts.keys import generate_key, hash_key, mask_key
from polyroute.accounts.types import Account, ApiKey
from polyroute.db.tables import accounts, api_keys, utc_now

LIMIT_RESETS = ("daily", "weekly", "monthly")
# A per-key rate limit fits the INTEGER column and keeps the limiter's microsecond arithmetic exact.
MAX_RATE_PER_MINUTE = 1_000_000_000
# The record types mirror their tables column for column.
_ACCOUNT_FIELDS = tuple(field.name for field in dataclasses.fields(Account))
_API_KEY_FIELDS = tuple(field.name for field in dataclasses.fields(ApiKey))


class AccountExists(ValueError):
    """An account with this email already exists."""


class UnknownAccount(LookupError):
    """No account has this id."""


class KeyChanges(TypedDict, total=False):
    """The fields `update_key` may change; an omitted field is left as it is."""

    name: str
    disabled: bool
    limit_pusd: int | None
    limit_reset: str | None
    expires_at: datetime | None
    rpm: int | None
    tpm: int | None


def normalize_email(email: str) -> str:
    """Lowercased and trimmed; refuses strings that are plainly not an address."""
    normalized = email.strip().lower()
    local, at, domain = normalized.partition("@")
    if not (local and at and domain) or any(ch.isspace() for ch in normalized):
        raise ValueError(f"not an email address: {email!r}")
    return normalized


class AccountStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create_account(self, email: str, *, is_admin: bool = False) -> Account:
        values = {"email": normalize_email(email), "is_admin": is_admin, "created_at": utc_now()}
        try:
            async with self._engine.begin() as conn:
                row = (await conn.execute(insert(accounts).values(values).returning(*accounts.c))).one()
        except IntegrityError as exc:
            raise AccountExists(f"an account with email {values['email']} already exists") from exc
        return _account(row)

    async def get_account(self, account_id: int) -> Account | None:
        return await self._one_account(accounts.c.id == account_id)

    async def get_account_by_email(self, email: str) -> Account | None:
        return await self._one_account(accounts.c.email == email.strip().lower())

    async def ensure_account(self, email: str, *, is_admin: bool = False) -> Account:
        """The account for `email`, created (with `is_admin`) if missing; safe under races."""
        found = await self.get_account_by_email(email)
        if found is not None:
            return found
        try:
            return await self.create_account(email, is_admin=is_admin)
        except AccountExists:
            found = await self.get_account_by_email(email)  # another caller created it first
            assert found is not None
            return found

    async def list_accounts(self) -> list[Account]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(accounts).order_by(accounts.c.id))).all()
        return [_account(row) for row in rows]

    async def create_key(
        self,
        account_id: int,
        name: str,
        *,
        is_management: bool = False,
        limit_pusd: int | None = None,
        limit_reset: str | None = None,
        expires_at: datetime | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
    ) -> tuple[str, ApiKey]:
        """A new key for the account: (plaintext, record). The plaintext is not kept anywhere."""
        changes = _checked(
            {
                "name": name,
                "limit_pusd": limit_pusd,
                "limit_reset": limit_reset,
                "expires_at": expires_at,
                "rpm": rpm,
                "tpm": tpm,
            }
        )
        key = generate_key()
        values = {
            **changes,
            "hash": hash_key(key),
            "account_id": account_id,
            "label": mask_key(key),
            "is_management": is_management,
            "disabled": False,
            "created_at": utc_now(),
        }
        try:
            async with self._engine.begin() as conn:
                row = (await conn.execute(insert(api_keys).values(values).returning(*api_keys.c))).one()
        except IntegrityError as exc:
            raise UnknownAccount(f"no account with id {account_id}") from exc
        return key, _api_key(row)

    async def find_key(self, key_hash: str) -> ApiKey | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.hash == key_hash))).one_or_none()
        return None if row is None else _api_key(row)

    async def list_keys(self, account_id: int | None = None, include_revoked: bool = False) -> list[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.hash)
        if account_id is not None:
            query = query.where(api_keys.c.account_id == account_id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_api_key(row) for row in rows]

    async def revoke_key(self, key_hash: str) -> bool:
        """True if the key exists and is revoked afterwards (revoking twice keeps the first time)."""
        now = utc_now()
        query = (
            update(api_keys)
            .where(api_keys.c.hash == key_hash, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now, updated_at=now)
        )
        async with self._engine.begin() as conn:
            if (await conn.execute(query)).rowcount == 1:
                return True
        return await self.find_key(key_hash) is not None

    async def update_key(self, key_hash: str, **fields: Unpack[KeyChanges]) -> ApiKey | None:
        """Change some of name, disabled, limit_pusd, limit_reset, expires_at, rpm, tpm; None if no such key."""
        changes = _checked(dict(fields))
        if not changes:
            return await self.find_key(key_hash)
        query = (
            update(api_keys)
            .where(api_keys.c.hash == key_hash)
            .values(**changes, updated_at=utc_now())
            .returning(*api_keys.c)
        )
        async with self._engine.begin() as conn:
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else _api_key(row)

    async def _one_account(self, condition: Any) -> Account | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(accounts).where(condition))).one_or_none()
        return None if row is None else _account(row)


def _checked(changes: dict[str, Any]) -> dict[str, Any]:
    """Validate key fields before they reach SQL, so callers get a plain ValueError."""
    unknown = set(changes) - set(KeyChanges.__annotations__)
    if unknown:
        raise ValueError(f"cannot change key field(s): {', '.join(sorted(unknown))}")
    if "name" in changes and not (isinstance(changes["name"], str) and changes["name"].strip()):
        raise ValueError("a key needs a non-empty name")
    limit = changes.get("limit_pusd")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit_pusd must be a non-negative integer or None, got {limit!r}")
    reset = changes.get("limit_reset")
    if reset is not None and reset not in LIMIT_RESETS:
        raise ValueError(f"limit_reset must be one of {', '.join(LIMIT_RESETS)} or None, got {reset!r}")
    expires = changes.get("expires_at")
    if expires is not None and (not isinstance(expires, datetime) or expires.utcoffset() is None):
        raise ValueError("expires_at must be a timezone-aware datetime or None")
    if "disabled" in changes and not isinstance(changes["disabled"], bool):
        raise ValueError("disabled must be a boolean")
    for field in ("rpm", "tpm"):
        rate = changes.get(field)
        if rate is not None and not is_rate_limit(rate):
            raise ValueError(f"{field} must be an integer from 0 to {MAX_RATE_PER_MINUTE} or None, got {rate!r}")
    return changes


def is_rate_limit(value: object) -> bool:
    """A per-minute limit a key may carry: 0 (no limit for this key) up to MAX_RATE_PER_MINUTE."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_RATE_PER_MINUTE


def _account(row: Row[Any]) -> Account:
    return Account(**{name: row._mapping[name] for name in _ACCOUNT_FIELDS})


def _api_key(row: Row[Any]) -> ApiKey:
    return ApiKey(**{name: row._mapping[name] for name in _API_KEY_FIELDS})
