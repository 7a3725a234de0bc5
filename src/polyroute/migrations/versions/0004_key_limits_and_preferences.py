"""Per-key rate limits and per-account provider preferences.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

`api_keys.rpm` / `api_keys.tpm`: a key's own requests- and tokens-per-minute limits (None = the
instance default from settings). `accounts.provider_preferences`: the account's default `provider`
object (JSON text, OpenRouter's shape), merged under each request's own `provider` field.
Self-contained on purpose (no imports from polyroute), like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("rpm", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tpm", sa.Integer(), nullable=True))
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("provider_preferences", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("provider_preferences")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("tpm")
        batch.drop_column("rpm")
