"""Web-app passwords: Argon2id hashing at OWASP's parameters, and the hash stored on the account.

OWASP's Password Storage Cheat Sheet: Argon2id with m=19 MiB, t=2, p=1 (its first listed option).
A stored hash made with other parameters is re-hashed at the next successful sign-in.
"""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.db.tables import accounts

ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024  # bounds the work one sign-in attempt can cause

_hasher = PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_KIB,
    parallelism=ARGON2_PARALLELISM,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)
# Verified against when the email is unknown, so both cases cost one Argon2id verification.
_DUMMY_HASH = _hasher.hash("polyroute-no-such-account")


class WeakPassword(ValueError):
    """The password does not meet the length rules."""


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise WeakPassword(f"Use at least {MIN_PASSWORD_CHARS} characters.")
    if len(password) > MAX_PASSWORD_CHARS:
        raise WeakPassword(f"Use at most {MAX_PASSWORD_CHARS} characters.")


def hash_password(password: str) -> str:
    check_password_rules(password)
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant work whether or not there is a stored hash: a missing one checks a dummy and fails."""
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


class PasswordStore:
    """Reads and writes `accounts.password_hash`; the hash never leaves this module's callers' scope."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def hash_for(self, email: str) -> tuple[int, str | None] | None:
        """(account id, stored hash) for the email, or None when there is no such account."""
        query = select(accounts.c.id, accounts.c.password_hash).where(accounts.c.email == email.strip().lower())
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else (int(row.id), row.password_hash)

    async def hash_for_account(self, account_id: int) -> str | None:
        query = select(accounts.c.password_hash).where(accounts.c.id == account_id)
        async with self._engine.connect() as conn:
            value = (await conn.execute(query)).scalar_one_or_none()
        return None if value is None else str(value)

    async def set_password(self, account_id: int, password: str) -> None:
        await self.set_hash(account_id, hash_password(password))

    async def set_hash(self, account_id: int, password_hash: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(update(accounts).where(accounts.c.id == account_id).values(password_hash=password_hash))
