"""Each account's default `provider` object, applied under every API request of the account's keys.

The account's object (set on the web app's Settings page, `accounts.provider_preferences`) is the
base; the request's own `provider` field wins field by field (`max_price` merges per price). Reads
are cached per account for the key cache's TTL (one read per account per expiry, `ReadThroughCache`),
and `forget` drops an account here at once and, through `on_forget` (the cache bus), in every other
process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.accounts.authenticator import KeyStoreUnavailable
from polyroute.db.read_cache import ReadThroughCache
from polyroute.db.tables import accounts

_MAX_CACHED_ACCOUNTS = 10_000
_NESTED = frozenset({"max_price"})  # objects merged key by key rather than replaced


def merge_provider(base: Mapping[str, Any] | None, request: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The request's fields over the account's; None when neither says anything."""
    if not base:
        return dict(request) if request else None
    merged = dict(base)
    for name, value in (request or {}).items():
        below = merged.get(name)
        if name in _NESTED and isinstance(value, dict) and isinstance(below, dict):
            merged[name] = {**below, **value}
        else:
            merged[name] = value
    return merged


def decode(text: str | None) -> dict[str, Any]:
    """The stored JSON as an object; anything else (NULL, damaged text) counts as no preference."""
    if not text:
        return {}
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


class AccountProviderDefaults:
    def __init__(self, engine: AsyncEngine, ttl_s: float, on_forget: Callable[[int], None] | None = None) -> None:
        self._engine = engine
        self.on_forget = on_forget
        # Never route against the account's policy (say, data collection denied): when the database
        # fails, a stale copy is still the account's own choice; with none, refuse like authentication (503).
        self._cache: ReadThroughCache[int, dict[str, Any]] = ReadThroughCache(
            self._read, ttl_s, max_entries=_MAX_CACHED_ACCOUNTS, stale_on_error=True
        )

    async def get(self, account_id: int) -> dict[str, Any]:
        return await self._cache.get(account_id)

    async def _read(self, account_id: int) -> dict[str, Any]:
        query = select(accounts.c.provider_preferences).where(accounts.c.id == account_id)
        try:
            async with self._engine.connect() as conn:
                return decode((await conn.execute(query)).scalar_one_or_none())
        except (SQLAlchemyError, OSError):
            raise KeyStoreUnavailable() from None

    async def apply(self, account_id: int, request: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The `provider` object to route this request by."""
        return merge_provider(await self.get(account_id), request)

    async def set(self, account_id: int, preferences: Mapping[str, Any]) -> None:
        """Store (an empty object clears) and drop every process's cached copy."""
        text = json.dumps(dict(preferences), sort_keys=True) if preferences else None
        async with self._engine.begin() as conn:
            await conn.execute(update(accounts).where(accounts.c.id == account_id).values(provider_preferences=text))
        self.forget(account_id)

    def forget(self, account_id: int) -> None:
        self._cache.forget(account_id)
        if self.on_forget is not None:
            self.on_forget(account_id)

    def forget_local(self, ident: str) -> None:
        """The cache bus handler: `ident` is the account id as text."""
        if ident.isdigit():
            self._cache.forget(int(ident))
