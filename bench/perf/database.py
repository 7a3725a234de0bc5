"""The gateway's database for one run: SQLite in the temp dir, or a fresh PostgreSQL database dropped at the end."""

from __future__ import annotations

import asyncio
import os

import asyncpg

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


class PostgresDatabase:
    """`CREATE DATABASE polyroute_bench_<pid>` on the server of `admin_url`; `drop()` removes it."""

    def __init__(self, admin_url: str = DEFAULT_SERVER, suffix: str = "") -> None:
        if "127.0.0.1" not in admin_url and "localhost" not in admin_url:
            raise SystemExit("--pg-server must be on 127.0.0.1")
        self.admin_url = admin_url
        self.name = f"polyroute_bench_{os.getpid()}{suffix}"
        self.created = False

    @property
    def url(self) -> str:
        return self.admin_url.rsplit("/", 1)[0] + "/" + self.name

    def create(self) -> str:
        asyncio.run(self._execute(f'CREATE DATABASE "{self.name}"'))
        self.created = True
        return self.url

    def drop(self) -> None:
        if self.created:
            asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self.created = False

    async def _execute(self, statement: str) -> None:
        conn = await asyncpg.connect(self.admin_url, timeout=10)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()
