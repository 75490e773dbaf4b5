"""API tokens for the HTTP API (issue 11).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

Written out in full like 0001 (with the frozen types of ``storage.migrations.helpers``),
never built from storage.tables. Only the hash of a token's secret is stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.migrations.helpers import json_type, when

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String, nullable=False),
        sa.Column("name", sa.String),
        sa.Column("scopes", json_type(), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", when(), nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("expires_at", when()),
        sa.Column("revoked_at", when()),
        sa.Column("last_used_at", when()),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_api_tokens_user_id", table_name="api_tokens")
    op.drop_table("api_tokens")
