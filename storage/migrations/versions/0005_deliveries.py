"""Deliveries: one row per (notice, recipient, channel), sent and retried on its own.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

Written out in full like 0001 (with the frozen types of ``storage.migrations.helpers``),
never built from storage.tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.migrations.helpers import serial, when

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", serial(), primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.String, nullable=False),
        sa.Column("notice_id", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.String, nullable=False),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", when(), nullable=False),
        sa.Column("next_attempt_at", when(), nullable=False),
        sa.Column("claimed_at", when()),
        sa.Column("sent_at", when()),
        sa.Column("last_error", sa.Text),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'dead')", name="ck_deliveries_status"
        ),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["outbox.id"], name="fk_deliveries_notice_id_outbox"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("delivery_id", name="uq_deliveries_delivery_id"),
        sa.UniqueConstraint("dedupe_key", name="uq_deliveries_dedupe_key"),
    )
    op.create_index(
        "ix_deliveries_status_next_attempt_at", "deliveries", ["status", "next_attempt_at"]
    )
    op.create_index("ix_deliveries_notice_id", "deliveries", ["notice_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_notice_id", table_name="deliveries")
    op.drop_index("ix_deliveries_status_next_attempt_at", table_name="deliveries")
    op.drop_table("deliveries")
