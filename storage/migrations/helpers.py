"""Column types and shorthands shared by the revisions in ``versions/``.

Revisions are written out in full rather than built from ``storage.tables``, so that a
later change to the tables cannot silently change what an old revision creates. These
helpers are part of that promise: what they return must never change (a new need gets a
new helper), or every database built from the revisions would differ from the ones
already upgraded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

Kind = Callable[[], sa.types.TypeEngine[Any]]


def json_type() -> sa.types.TypeEngine[Any]:
    """JSON, stored as JSONB on PostgreSQL."""
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def when() -> sa.DateTime:
    """Every instant is stored with its time zone."""
    return sa.DateTime(timezone=True)


def serial() -> sa.types.TypeEngine[int]:
    """A 64-bit counter on PostgreSQL; on SQLite ``INTEGER`` so the key is the rowid."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def required(kind: Kind, *names: str) -> list[sa.Column[Any]]:
    """``NOT NULL`` columns of one type, in the order given."""
    return [sa.Column(name, kind(), nullable=False) for name in names]


def optional(kind: Kind, *names: str) -> list[sa.Column[Any]]:
    """Nullable columns of one type, in the order given."""
    return [sa.Column(name, kind(), nullable=True) for name in names]


def pg_refusal(function: str, message: str) -> str:
    """A PostgreSQL trigger function that refuses the statement with ``message``."""
    return f"""
    CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{message}: % on %', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END $$
    """
