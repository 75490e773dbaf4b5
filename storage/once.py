"""Claim a key once: the shared step of webhook receipts, action links and idempotency keys.

Each of those tables is keyed so that a second insert of the same key does nothing; the
insert, not a read before it, decides who got there first, on SQLite (one writer at a
time) and on PostgreSQL (``ON CONFLICT DO NOTHING`` waits for a concurrent insert of the
same key to commit, then does nothing) alike.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect


def insert_once(dialect: str, table: sa.Table) -> Any:
    """An INSERT that does nothing (rowcount 0) when the primary key is taken."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite_dialect.insert
    keys = [c.name for c in table.primary_key.columns]
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=keys)
        .execution_options(preserve_rowcount=True)
    )


def locked(dialect: str, stmt: sa.Select[Any]) -> sa.Select[Any]:
    """``stmt`` holding its row until commit (PostgreSQL); SQLite's writer lock does that."""
    return stmt.with_for_update() if dialect == "postgresql" else stmt
