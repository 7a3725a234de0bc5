"""Alembic environment for polyroute's schema.

At runtime `polyroute.db.migrate` hands over an open connection in `config.attributes`; from
the alembic CLI (alembic.ini at the repo root) the URL comes from `sqlalchemy.url` or, when
that is empty, from polyroute's settings (POLYROUTE_DATABASE_URL / POLYROUTE_DATA_DIR).
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from polyroute.db.engine import create_engine
from polyroute.db.tables import metadata
from polyroute.settings import load_settings, normalize_database_url

config = context.config


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: autogenerate copy-and-move batch operations for it.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _cli_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or load_settings().database_url
    return normalize_database_url(url)


async def _run_from_cli() -> None:
    engine = create_engine(_cli_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_on)
            await connection.commit()
    finally:
        await engine.dispose()


def _run_offline() -> None:
    url = _cli_url()
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run_on(given)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)  # only from the CLI: never reconfigure the server's logging
    if context.is_offline_mode():
        _run_offline()
    else:
        asyncio.run(_run_from_cli())


_main()
