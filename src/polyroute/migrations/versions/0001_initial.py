"""Initial schema: accounts, API keys and generation records.

Revision ID: 0001
Revises:
Create Date: 2025-11-22

Self-contained on purpose (no imports from polyroute): a migration describes the schema as it
was at this revision, whatever the application's tables look like later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _created_at() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.current_timestamp()
    )


def _flag(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())


def _count(name: str, type_: sa.types.TypeEngine[int] | None = None) -> sa.Column[object]:
    return sa.Column(name, type_ or sa.Integer(), nullable=False, server_default=sa.text("0"))


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        _flag("is_admin"),
        sa.Column("default_model", sa.Text(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("email", name="uq_accounts_email"),
    )
    op.create_table(
        "api_keys",
        sa.Column("hash", sa.CHAR(64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        _flag("is_management"),
        _flag("disabled"),
        sa.Column("limit_pusd", sa.BigInteger(), nullable=True),
        sa.Column("limit_reset", sa.String(16), nullable=True),
        _timestamp("expires_at"),
        _created_at(),
        _timestamp("updated_at"),
        _timestamp("revoked_at"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_api_keys_account_id_accounts"),
        sa.PrimaryKeyConstraint("hash", name="pk_api_keys"),
    )
    op.create_index("ix_api_keys_account_id", "api_keys", ["account_id"])
    _create_generations()


def _create_generations() -> None:
    op.create_table(
        "generations",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.CHAR(64), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("upstream_model", sa.Text(), nullable=True),
        _flag("streamed"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("finish_reason", sa.Text(), nullable=True),
        sa.Column("native_finish_reason", sa.Text(), nullable=True),
        _count("prompt_tokens"),
        _count("completion_tokens"),
        _count("cached_tokens"),
        _count("reasoning_tokens"),
        _count("cost_pusd", sa.BigInteger()),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("ttft_ms", sa.Integer(), nullable=True),
        sa.Column("http_referer", sa.Text(), nullable=True),
        sa.Column("app_title", sa.Text(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_generations"),
    )
    op.create_index("ix_generations_account_id_created_at", "generations", ["account_id", "created_at"])
    op.create_index("ix_generations_key_hash_created_at", "generations", ["key_hash", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_generations_key_hash_created_at", table_name="generations")
    op.drop_index("ix_generations_account_id_created_at", table_name="generations")
    op.drop_table("generations")
    op.drop_index("ix_api_keys_account_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("accounts")
