"""The HTTP face's memory: webhook receipts, used action links, idempotency keys.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27

Written out in full like 0001 (with the frozen types of ``storage.migrations.helpers``),
never built from storage.tables. Three tables, each keyed so that a second insert of the
same key fails: that is what makes a webhook, a link or an Idempotency-Key act once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.migrations.helpers import json_type, when

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_receipts",
        sa.Column("sender", sa.String, nullable=False),
        sa.Column("webhook_id", sa.String(255), nullable=False),
        sa.Column("received_at", when(), nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("body", json_type()),
        sa.CheckConstraint("status IN ('pending', 'done')", name="ck_webhook_receipts_status"),
        sa.PrimaryKeyConstraint("sender", "webhook_id", name="pk_webhook_receipts"),
    )
    op.create_index("ix_webhook_receipts_received_at", "webhook_receipts", ["received_at"])
    op.create_table(
        "action_links",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String, nullable=False),
        sa.Column("user_id", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("used_at", when(), nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("result", json_type(), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'done')", name="ck_action_links_status"),
        sa.PrimaryKeyConstraint("id", name="pk_action_links"),
    )
    op.create_index("ix_action_links_used_at", "action_links", ["used_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("created_at", when(), nullable=False),
        sa.Column("claimed_at", when(), nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("headers", json_type()),
        sa.Column("body", sa.LargeBinary),
        sa.CheckConstraint("status IN ('pending', 'done')", name="ck_idempotency_keys_status"),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_action_links_used_at", table_name="action_links")
    op.drop_table("action_links")
    op.drop_index("ix_webhook_receipts_received_at", table_name="webhook_receipts")
    op.drop_table("webhook_receipts")
