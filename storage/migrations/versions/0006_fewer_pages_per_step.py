"""Fewer pages written per step: three audit index entries fewer, task roles without rowid.

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

On SQLite, ``task_roles`` (small rows, a text primary key) becomes a WITHOUT ROWID
table: the row lives in the primary key's B-tree instead of in a rowid table plus a
separate index on the key, so each write touches one B-tree fewer. (``audit_chains``
would gain less, a page per new instance, and its append-only triggers would have to be
rebuilt with it.) PostgreSQL has no rowid; nothing changes there.
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


_ROWLESS = ("task_roles",)


def _rebuild(table: str, with_rowid: bool) -> None:
    """SQLite cannot change this in place: copy into a new table (Alembic batch mode)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    kwargs = {"sqlite_with_rowid": with_rowid}
    with op.batch_alter_table(table, recreate="always", table_kwargs=kwargs):
        pass


def upgrade() -> None:
    for table in _ROWLESS:
        _rebuild(table, with_rowid=False)
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
    for table in _ROWLESS:
        _rebuild(table, with_rowid=True)
    op.drop_index("ix_audit_log_on_behalf_of_seq", table_name="audit_log")
    op.create_index("ix_audit_log_on_behalf_of_seq", "audit_log", ["on_behalf_of", "seq"])
    op.create_index("ix_audit_log_process", "audit_log", ["process"])
    op.create_index("ix_audit_log_instance_id", "audit_log", ["instance_id"])
