"""Audit log: three index entries fewer per entry written.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27

Every audit entry was inserted into six indexes, one page written for each per step.
- ``(instance_id)`` goes: an instance's entries are exactly its chain, and
  ``(chain_key, seq)`` already lists them, in the order they are shown.
- ``(process)`` goes: a process filter now walks the log in seq order (the order it
  prints in) and stops when the page is full; it was the only query using it.
- ``(on_behalf_of, seq)`` keeps only the entries that name someone acted for (a few):
  an entry without one no longer touches it, and ``on_behalf_of = X`` still uses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAMED = sa.text("on_behalf_of IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_audit_log_instance_id", table_name="audit_log")
    op.drop_index("ix_audit_log_process", table_name="audit_log")
    op.drop_index("ix_audit_log_on_behalf_of_seq", table_name="audit_log")
    op.create_index(
        "ix_audit_log_on_behalf_of_seq",
        "audit_log",
        ["on_behalf_of", "seq"],
        sqlite_where=_NAMED,
        postgresql_where=_NAMED,
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_on_behalf_of_seq", table_name="audit_log")
    op.create_index("ix_audit_log_on_behalf_of_seq", "audit_log", ["on_behalf_of", "seq"])
    op.create_index("ix_audit_log_process", "audit_log", ["process"])
    op.create_index("ix_audit_log_instance_id", "audit_log", ["instance_id"])
