"""The reads behind ``run.py report``: each one index range scan, streamed.

Reports cover a period of months at a time; they must not load a month of tasks or a
million audit entries into memory at once, nor sort them in the database, so every read
here walks an index in its own order and yields rows in batches.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from storage.rows import aware
from storage.tables import audit_log, instances, tasks

if TYPE_CHECKING:
    from storage.store import Store

_BATCH = 2000


class ReportData:
    """Read-only queries of one :class:`~storage.store.Store` for reports."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _stream(self, stmt: sa.Select[Any]) -> Iterator[dict[str, Any]]:
        with self._store._read() as conn:
            result = conn.execution_options(yield_per=_BATCH).execute(stmt)
            for row in result:
                yield dict(row._mapping)

    def instances_started(
        self, since: datetime, until: datetime, process: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Instances created in ``[since, until)``, through ``(created_at, id)`` (or
        ``(process, status, created_at, id)``'s sibling by process when one is named)."""
        aware(since, "since")
        aware(until, "until")
        cols = [instances.c[n] for n in ("id", "process", "status", "outcome", "created_at")]
        cols.append(instances.c.updated_at)
        stmt = sa.select(*cols).where(
            instances.c.created_at >= since, instances.c.created_at < until
        )
        if process is not None:
            stmt = stmt.where(instances.c.process == process)
        return self._stream(stmt)

    def tasks_closed(
        self, since: datetime, until: datetime, process: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Tasks closed in ``[since, until)`` (decided or cancelled), through
        ``(closed_at)``."""
        aware(since, "since")
        aware(until, "until")
        names = ("id", "process", "state", "status", "decision", "decided_by", "created_at")
        cols = [tasks.c[n] for n in (*names, "closed_at", "due_at")]
        closed = tasks.c.closed_at
        stmt = sa.select(*cols).where(closed.is_not(None), closed >= since, closed < until)
        if process is not None:
            stmt = stmt.where(tasks.c.process == process)
        return self._stream(stmt)

    def tasks_overdue(self, now: datetime, process: str | None = None) -> Iterator[dict[str, Any]]:
        """Open tasks due before ``now``, through ``(status, due_at, id)``."""
        aware(now, "now")
        names = ("id", "instance_id", "process", "state", "roles", "created_at", "due_at")
        stmt = sa.select(*(tasks.c[n] for n in names)).where(
            tasks.c.status == "open", tasks.c.due_at < now
        )
        if process is not None:
            stmt = stmt.where(tasks.c.process == process)
        return self._stream(stmt)

    def audit_entries(
        self,
        since: datetime,
        until: datetime,
        actions: Collection[str],
        process: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Audit entries of ``actions`` effective in ``[since, until)``, through ``(at)``."""
        aware(since, "since")
        aware(until, "until")
        names = ("process", "instance_id", "action", "from_state", "actor", "at", "data")
        stmt = sa.select(*(audit_log.c[n] for n in names)).where(
            audit_log.c.at >= since, audit_log.c.at < until, audit_log.c.action.in_(actions)
        )
        if process is not None:
            stmt = stmt.where(audit_log.c.process == process)
        return self._stream(stmt)
