"""Registers: typed, versioned books that process steps write (issue 12).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27

``registers`` holds one version counter per register, bumped by every write;
``register_rows`` the current row per key; ``register_history`` every version ever
written (values, previous values, who, which instance), from which a step reads a
register as of the version it pinned. Written out in full like 0001, never built from
storage.tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.migrations.helpers import json_type, when

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registers",
        sa.Column("name", sa.String, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_registers"),
    )
    op.create_table(
        "register_rows",
        sa.Column("register", sa.String, nullable=False),
        sa.Column("key", sa.String, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("values", json_type(), nullable=False),
        sa.Column("updated_at", when(), nullable=False),
        sa.PrimaryKeyConstraint("register", "key", name="pk_register_rows"),
    )
    op.create_table(
        "register_history",
        sa.Column("register", sa.String, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("key", sa.String, nullable=False),
        sa.Column("values", json_type(), nullable=False),
        sa.Column("previous", json_type()),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("process", sa.String, nullable=False),
        sa.Column("instance_id", sa.String),
        sa.Column("at", when(), nullable=False),
        sa.Column("recorded_at", when(), nullable=False),
        sa.PrimaryKeyConstraint("register", "version", name="pk_register_history"),
    )
    op.create_index(
        "ix_register_history_register_key_version",
        "register_history",
        ["register", "key", "version"],
    )
    op.create_index("ix_register_history_register_at", "register_history", ["register", "at"])


def downgrade() -> None:
    op.drop_index("ix_register_history_register_at", table_name="register_history")
    op.drop_index("ix_register_history_register_key_version", table_name="register_history")
    op.drop_table("register_history")
    op.drop_table("register_rows")
    op.drop_table("registers")
