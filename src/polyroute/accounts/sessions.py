"""Web-app sessions: random tokens in a cookie, only their SHA-256 kept, with idle and absolute timeouts.

Each session carries its CSRF synchronizer token and, once the chatroom asked for one, the hash of
its session-scoped API key (revoked when the session ends).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.db.tables import utc_now, web_sessions

SESSION_TOKEN_BYTES = 32
IDLE_TIMEOUT = timedelta(hours=12)
ABSOLUTE_TIMEOUT = timedelta(days=7)
_TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often


@dataclass(frozen=True, slots=True)
class WebSession:
    id_hash: str
    account_id: int
    csrf_token: str
    chat_key_hash: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, account_id: int) -> tuple[str, WebSession]:
        """A new session: (cookie token, record). A fresh token on every sign-in (no fixation)."""
        token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
        now = utc_now()
        values = {
            "id_hash": token_hash(token),
            "account_id": account_id,
            "csrf_token": secrets.token_urlsafe(32),
            "chat_key_hash": None,
            "created_at": now,
            "last_seen_at": now,
            "expires_at": now + ABSOLUTE_TIMEOUT,
        }
        async with self._engine.begin() as conn:
            await conn.execute(insert(web_sessions).values(values))
        return token, WebSession(**values)  # type: ignore[arg-type]

    async def resolve(self, token: str) -> WebSession | None:
        """The live session for a cookie token; an expired or idle one is deleted and gives None."""
        if not token or len(token) > 128:
            return None
        id_hash = token_hash(token)
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(web_sessions).where(web_sessions.c.id_hash == id_hash))).one_or_none()
        if row is None:
            return None
        found = WebSession(**{name: row._mapping[name] for name in WebSession.__slots__})
        now = utc_now()
        if found.expires_at <= now or found.last_seen_at + IDLE_TIMEOUT <= now:
            await self.delete(id_hash)
            return None
        if now - found.last_seen_at >= _TOUCH_EVERY:
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(web_sessions).where(web_sessions.c.id_hash == id_hash).values(last_seen_at=now)
                )
        return found

    async def set_chat_key(self, id_hash: str, key_hash: str | None) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(web_sessions).where(web_sessions.c.id_hash == id_hash).values(chat_key_hash=key_hash)
            )

    async def delete(self, id_hash: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == id_hash))

    async def delete_for_account(self, account_id: int, keep: str | None = None) -> list[str]:
        """End every session of the account (but `keep`); returns their chat key hashes to revoke."""
        condition = web_sessions.c.account_id == account_id
        if keep is not None:
            condition = condition & (web_sessions.c.id_hash != keep)
        async with self._engine.begin() as conn:
            rows = (await conn.execute(select(web_sessions.c.chat_key_hash).where(condition))).all()
            await conn.execute(delete(web_sessions).where(condition))
        return [row.chat_key_hash for row in rows if row.chat_key_hash]
