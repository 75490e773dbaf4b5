"""Linked processes: an instance's parent, to list a parent's children.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27

A state may start other processes (``spawn:``); each child records its parent in its
``meta`` and here, so ``run.py instances --parent ID`` is one range scan of
``(parent_id, created_at, id)`` instead of reading every instance's meta. Existing rows
have no parent (NULL). ADD COLUMN without a default is native on both databases.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("instances", sa.Column("parent_id", sa.String, nullable=True))
    op.create_index(
        "ix_instances_parent_id_created_at_id", "instances", ["parent_id", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_instances_parent_id_created_at_id", table_name="instances")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("parent_id")
