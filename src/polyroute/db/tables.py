"""Table definitions (SQLAlchemy Core): accounts, API keys, generation records and the credit ledger.

Migrations in `polyroute/migrations` create these tables; a test checks the two agree.
Money is BIGINT picodollars; timestamps are timezone-aware UTC on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Named constraints keep Alembic (and SQLite batch mode) able to find them again.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utc_now() -> datetime:
    return datetime.now(UTC)


# The last UTC datetime bound on SQLite and its text. A batch binds one `now` to every row and
# column it writes, across several statements (each with its own processor): formatted once. One
# tuple, replaced whole (the writer's thread binds too), never half of a pair.
_last_utc_text: tuple[datetime | None, str] = (None, "")


_SQLITE_DATETIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"  # SQLAlchemy's SQLite DATETIME text
_from_iso = datetime.fromisoformat


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out.

    PostgreSQL stores TIMESTAMPTZ; SQLite has no time zones, so values are stored as UTC text
    and given back their UTC tzinfo on the way out. Naive datetimes are refused: they hide bugs.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # SQLite: this method and SQLAlchemy's DATETIME text format fused into one %-format
        # ("YYYY-MM-DD HH:MM:SS.ffffff", as isoformat writes it); two Python processors per value
        # were about 2.5 % of a chat request's CPU (issue #9). tests/unit/db checks they agree.
        def process(value: datetime | None) -> str | None:
            global _last_utc_text
            if value is None:
                return None
            seen = _last_utc_text
            if value is seen[0]:
                return seen[1]
            if value.tzinfo is UTC:  # ours always are; %-formatting is a third cheaper than isoformat
                text = _SQLITE_DATETIME % (
                    value.year,
                    value.month,
                    value.day,
                    value.hour,
                    value.minute,
                    value.second,
                    value.microsecond,
                )
                _last_utc_text = (value, text)
                return text
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        composed = super().result_processor(dialect, coltype)  # SQLAlchemy's parser, then process_result_value
        if dialect.name != "sqlite" or composed is None:
            return composed

        # SQLite: the text this type writes (26 characters, UTC, no offset) parsed with "+00:00"
        # appended comes back aware in one C call; the composed path took ten times as long, most of
        # it in `replace(tzinfo=...)` (issue #9: two per settle, for the closed reservation's times).
        # Any other text (a server default without microseconds, an offset) takes the composed path.
        def process(value: Any) -> datetime | None:
            if type(value) is str and len(value) == 26:
                try:
                    return _from_iso(value + "+00:00")
                except ValueError:
                    pass
            result: datetime | None = composed(value)
            return result

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _flag(name: str) -> Column[bool]:
    return Column(name, Boolean, nullable=False, default=False, server_default=false())


def _count(name: str, type_: type[Integer] = Integer) -> Column[int]:
    return Column(name, type_, nullable=False, default=0, server_default=text("0"))


def _created_at() -> Column[datetime]:
    return Column("created_at", UtcDateTime, nullable=False, default=utc_now, server_default=func.current_timestamp())


accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", Text, nullable=False, unique=True),  # always stored lowercased
    _flag("is_admin"),
    Column("default_model", Text, nullable=True),
    _created_at(),
    Column("password_hash", Text, nullable=True),  # Argon2id PHC string; None = cannot sign in to the web app
    Column("provider_preferences", Text, nullable=True),  # JSON `provider` object applied under each request's own
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("hash", CHAR(64), primary_key=True),  # SHA-256 hex of the key: its public id
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", Text, nullable=False),
    Column("label", Text, nullable=False),  # masked key, e.g. "sk-pr-v1-0e6...1c96"
    _flag("is_management"),
    _flag("disabled"),
    Column("limit_pusd", BigInteger, nullable=True),  # None = no spending limit
    Column("limit_reset", String(16), nullable=True),  # "daily" | "weekly" | "monthly"
    Column("expires_at", UtcDateTime, nullable=True),
    _created_at(),
    Column("updated_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("rpm", Integer, nullable=True),  # the key's requests/minute limit; None = the instance default
    Column("tpm", Integer, nullable=True),  # the key's tokens/minute limit; None = the instance default
)

# An append-only log: no foreign keys, so history outlives keys and accounts, and one bad id
# cannot make the batched writer lose a whole batch.
generations = Table(
    "generations",
    metadata,
    Column("id", Text, primary_key=True),  # "gen-<unix>-<20 alphanumerics>"
    Column("account_id", Integer, nullable=False),
    Column("key_hash", CHAR(64), nullable=False),
    Column("model", Text, nullable=False),  # public model id actually used
    Column("provider", Text, nullable=False),  # provider slug
    Column("upstream_model", Text, nullable=True),
    _flag("streamed"),
    Column("status", String(16), nullable=False),  # "ok" | "error" | "cancelled"
    Column("finish_reason", Text, nullable=True),
    Column("native_finish_reason", Text, nullable=True),
    _count("prompt_tokens"),
    _count("completion_tokens"),
    _count("cached_tokens"),
    _count("reasoning_tokens"),
    _count("cost_pusd", BigInteger),
    Column("latency_ms", Integer, nullable=True),
    Column("ttft_ms", Integer, nullable=True),
    Column("http_referer", Text, nullable=True),
    Column("app_title", Text, nullable=True),
    Column("error_code", Integer, nullable=True),
    _created_at(),
)

Index("ix_generations_account_id_created_at", generations.c.account_id, generations.c.created_at)
Index("ix_generations_key_hash_created_at", generations.c.key_hash, generations.c.created_at)


# --- the credit ledger (see docs/billing.md) ------------------------------------------------------
# `ledger_entries` is append-only and is the money of record; `account_balances` and `key_spend` are
# running totals kept equal to it in the same transactions; `reservations` holds the open holds.

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("ref", Text, nullable=False),  # generation id (gen-...) or grant id (grant-...)
    Column("kind", String(16), nullable=False),  # grant | reserve | settle | release | void
    Column("account_id", Integer, nullable=False),
    Column("key_hash", CHAR(64), nullable=True),  # None for grants
    Column("amount_pusd", BigInteger, nullable=False),
    Column("note", Text, nullable=True),
    _created_at(),
    UniqueConstraint("ref", "kind"),  # every write is idempotent; a request has one entry per kind
)
Index("ix_ledger_entries_account_id_created_at", ledger_entries.c.account_id, ledger_entries.c.created_at)

account_balances = Table(
    "account_balances",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id"), primary_key=True),
    _count("credits_pusd", BigInteger),  # sum of grants
    _count("spent_pusd", BigInteger),  # sum of settles
    _count("reserved_pusd", BigInteger),  # sum of open reservations
    Column("updated_at", UtcDateTime, nullable=True),
)

key_spend = Table(
    "key_spend",
    metadata,
    Column("key_hash", CHAR(64), ForeignKey("api_keys.hash"), primary_key=True),
    Column("account_id", Integer, nullable=False),
    _count("reserved_pusd", BigInteger),
    _count("spent_pusd", BigInteger),  # all time
    Column("day_start", Date, nullable=True),  # the UTC day `day_spent_pusd` belongs to
    _count("day_spent_pusd", BigInteger),
    Column("week_start", Date, nullable=True),  # Monday
    _count("week_spent_pusd", BigInteger),
    Column("month_start", Date, nullable=True),  # the 1st
    _count("month_spent_pusd", BigInteger),
)

reservations = Table(
    "reservations",
    metadata,
    Column("ref", Text, primary_key=True),  # the generation id
    Column("account_id", Integer, nullable=False),
    Column("key_hash", CHAR(64), nullable=False),
    Column("amount_pusd", BigInteger, nullable=False),
    Column("model", Text, nullable=False),
    _created_at(),
    Column("expires_at", UtcDateTime, nullable=False),  # a lease: renewed while its request runs
    # Open holds only (a row lives from reserve to close), so no index on expires_at: the sweeper
    # scans them. WITHOUT ROWID on SQLite: one B-tree changed per reserve or close (migration 0005).
    sqlite_with_rowid=False,
)


# --- the web app (see docs/web.md) ----------------------------------------------------------------

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", CHAR(64), primary_key=True),  # SHA-256 hex of the cookie's token; the token is not stored
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("csrf_token", Text, nullable=False),  # synchronizer token of this session's forms
    Column("chat_key_hash", CHAR(64), nullable=True),  # the chatroom's session-scoped API key
    _created_at(),
    Column("last_seen_at", UtcDateTime, nullable=False),  # idle timeout
    Column("expires_at", UtcDateTime, nullable=False),  # absolute timeout
)

credit_codes = Table(
    "credit_codes",
    metadata,
    Column("code_hash", CHAR(64), primary_key=True),  # SHA-256 hex of the code; the code is shown once
    Column("label", Text, nullable=False),  # masked code
    Column("amount_pusd", BigInteger, nullable=False),
    Column("created_by", Integer, nullable=False),
    _created_at(),
    Column("redeemed_by", Integer, nullable=True),
    Column("redeemed_at", UtcDateTime, nullable=True),
)

instance_settings = Table(
    "instance_settings",
    metadata,
    Column("name", String(64), primary_key=True),  # e.g. "signup_open"
    Column("value", Text, nullable=False),
)
