"""The database under a Store: its engine and the three kinds of transaction it runs.

Shared by the parts of the Store (``storage.store``, ``storage.auditlog``,
``storage.listing``), each a class of its own so that no module holds every query.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from engine.errors import InvalidData
from storage.auditkeys import AuditKeys
from storage.db import SQLITE_BEGIN
from storage.steps import StepWriter


def check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidData("limit", f"must be a whole number of at least 1, not {limit!r}")


class Database:
    """An engine, the audit keys its writes sign with, and its transactions."""

    def __init__(self, engine: sa.Engine, audit_keys: AuditKeys) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.audit_keys = audit_keys
        self._steps = StepWriter(engine, audit_keys)

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, so writers queue, not fail)."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _snapshot(self) -> Iterator[sa.Connection]:
        """A read that sees one snapshot across statements (PostgreSQL: REPEATABLE READ)."""
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            conn.execution_options(**{SQLITE_BEGIN: "DEFERRED"})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        """One consistent read (SQLite: deferred BEGIN, so readers never wait for writers)."""
        with self.engine.connect() as conn:
            conn.execution_options(**{SQLITE_BEGIN: "DEFERRED"})
            with conn.begin():
                yield conn
