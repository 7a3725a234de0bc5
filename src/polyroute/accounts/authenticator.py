"""Bearer-key authentication with a short-lived in-process cache.

The cache answers repeat requests without a database round trip, and reads each key once per
expiry however many requests arrive (`ReadThroughCache`). Without the cache bus a revoked or
disabled key keeps working in this process for at most about two TTLs (default 1 s): one of
freshness, and the copy that requests arriving during the refresh read still use. With several
processes, `forget` also calls `on_forget` (the cache bus), so the others drop the key at once via
`forget_local`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from polyroute.accounts.keys import KEY_PREFIX, hash_key, keys_match
from polyroute.accounts.types import ApiKey
from polyroute.db.read_cache import ReadThroughCache
from polyroute.domain.errors import GatewayError, Unauthorized

_MAX_CACHED_KEYS = 10_000


class KeyStoreUnavailable(GatewayError):
    """The key store (the database) cannot answer: refuse at once, retry shortly; nothing is served."""

    status = 503
    error_type = "server"

    def __init__(self) -> None:
        super().__init__("Authentication is temporarily unavailable; try again shortly", headers={"Retry-After": "1"})


class KeyLookup(Protocol):
    async def find_key(self, key_hash: str) -> ApiKey | None: ...


class KeyAuthenticator:
    def __init__(self, store: KeyLookup, ttl_s: float, on_forget: Callable[[str], None] | None = None) -> None:
        self._store = store
        self.on_forget = on_forget
        self._cache: ReadThroughCache[str, ApiKey | None] = ReadThroughCache(
            self._find, ttl_s, max_entries=_MAX_CACHED_KEYS
        )

    async def authenticate(self, authorization: str | None) -> ApiKey:
        """Resolve an `Authorization: Bearer <key>` header to a usable key, or raise 401."""
        if not authorization:
            raise Unauthorized("No auth credentials found")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("No auth credentials found")
        if not token.startswith(KEY_PREFIX):
            raise Unauthorized("Invalid API key")
        presented = hash_key(token)
        key = await self._lookup(presented)
        # The lookup is by hash; the constant-time comparison is defence in depth against a store
        # whose index lookup could be made to answer for a near-miss.
        if key is None or not keys_match(presented, key.hash) or key.revoked_at is not None:
            raise Unauthorized("Invalid API key")
        if key.disabled:
            raise Unauthorized("This API key is disabled")
        if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
            raise Unauthorized("This API key has expired")
        return key

    async def _lookup(self, key_hash: str) -> ApiKey | None:
        return await self._cache.get(key_hash)

    async def _find(self, key_hash: str) -> ApiKey | None:
        try:
            return await self._store.find_key(key_hash)
        except (SQLAlchemyError, OSError):
            raise KeyStoreUnavailable() from None

    def forget(self, key_hash: str) -> None:
        """Drop the key here now and, through `on_forget`, in every other process."""
        self._cache.forget(key_hash)
        if self.on_forget is not None:
            self.on_forget(key_hash)

    def forget_local(self, key_hash: str) -> None:
        self._cache.forget(key_hash)
