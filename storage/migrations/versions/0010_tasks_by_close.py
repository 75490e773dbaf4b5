"""Tasks by the time they closed, for reports over a period.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27

``run.py report`` counts the tasks decided in a month (on time, late, time per state and
per handler). Without an index that is a scan of every task ever opened; with
``(closed_at)`` it is one range scan of the month. Open tasks have no ``closed_at``, and
PostgreSQL leaves them out of the index; SQLite indexes NULLs too, a few bytes each.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CLOSED = sa.text("closed_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_tasks_closed_at",
        "tasks",
        ["closed_at"],
        sqlite_where=_CLOSED,
        postgresql_where=_CLOSED,
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_closed_at", table_name="tasks")
