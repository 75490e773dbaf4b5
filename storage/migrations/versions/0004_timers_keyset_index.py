"""Timers: index (status, due_at, id), the order ``tick`` pages through due timers in.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

``tick`` reads due timers a page at a time with a keyset cursor over ``(due_at, id)``.
With only ``(status, due_at)`` indexed, every page of a backlog that fell due at one
instant (a restart after downtime, a bulk import) had to read and sort all the rest of
that instant's timers by id: quadratic in the backlog (about 0.3 s a page with 50,000
left on SQLite). With ``id`` in the index a page is a range read of its own length. The
old index is a prefix of the new one, so the idle tick and ``next_timer_due`` keep theirs.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_timers_status_due_at_id", "timers", ["status", "due_at", "id"])
    op.drop_index("ix_timers_status_due_at", table_name="timers")


def downgrade() -> None:
    op.create_index("ix_timers_status_due_at", "timers", ["status", "due_at"])
    op.drop_index("ix_timers_status_due_at_id", table_name="timers")
