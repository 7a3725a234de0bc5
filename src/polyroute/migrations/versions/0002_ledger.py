"""Credit ledger: append-only entries, account balances, per-key spend, open reservations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-09-01

Self-contained on purpose (no imports from polyroute), like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_at() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.current_timestamp()
    )


def _money(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0"))


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.CHAR(64), nullable=True),
        sa.Column("amount_pusd", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_entries"),
        sa.UniqueConstraint("ref", "kind", name="uq_ledger_entries_ref_kind"),
    )
    op.create_index("ix_ledger_entries_account_id_created_at", "ledger_entries", ["account_id", "created_at"])
    op.create_table(
        "account_balances",
        sa.Column("account_id", sa.Integer(), nullable=False),
        _money("credits_pusd"),
        _money("spent_pusd"),
        _money("reserved_pusd"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_account_balances_account_id_accounts"),
        sa.PrimaryKeyConstraint("account_id", name="pk_account_balances"),
    )
    op.create_table(
        "key_spend",
        sa.Column("key_hash", sa.CHAR(64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        _money("reserved_pusd"),
        _money("spent_pusd"),
        sa.Column("day_start", sa.Date(), nullable=True),
        _money("day_spent_pusd"),
        sa.Column("week_start", sa.Date(), nullable=True),
        _money("week_spent_pusd"),
        sa.Column("month_start", sa.Date(), nullable=True),
        _money("month_spent_pusd"),
        sa.ForeignKeyConstraint(["key_hash"], ["api_keys.hash"], name="fk_key_spend_key_hash_api_keys"),
        sa.PrimaryKeyConstraint("key_hash", name="pk_key_spend"),
    )
    op.create_table(
        "reservations",
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.CHAR(64), nullable=False),
        sa.Column("amount_pusd", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        _created_at(),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ref", name="pk_reservations"),
    )
    op.create_index("ix_reservations_expires_at", "reservations", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_reservations_expires_at", table_name="reservations")
    op.drop_table("reservations")
    op.drop_table("key_spend")
    op.drop_table("account_balances")
    op.drop_index("ix_ledger_entries_account_id_created_at", table_name="ledger_entries")
    op.drop_table("ledger_entries")
