"""Tasks for people, not only roles: a task's own notes, and "my requests" by index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27

- ``tasks.meta`` (JSON, ``{}`` for existing rows) keeps what only some tasks have: who
  claimed it, who was resolved as its assignee and why, signers added (加签) still to
  decide, the last reminder sent on request (催办). A column of its own for each would
  widen every task row for facts most tasks never have.
- ``task_roles.role`` now also holds ``user:<id>`` keys for tasks assigned to named
  people; no schema change, the key is still a string.
- ``instances (requester, created_at, id)``: "my requests" (``instances --requester``)
  is one index range scan in listing order, like the other listing filters.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.migrations.helpers import json_type

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN with a constant default is native on both: no table copy, which on SQLite
    # would drop and rebuild ``tasks`` and cascade-delete its ``task_roles`` rows
    op.add_column(
        "tasks", sa.Column("meta", json_type(), nullable=False, server_default=sa.text("'{}'"))
    )
    op.create_index(
        "ix_instances_requester_created_at_id", "instances", ["requester", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_instances_requester_created_at_id", table_name="instances")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("meta")
