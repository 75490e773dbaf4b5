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
from storage.tables import audit_log, instances, register_history, tasks

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

    # ------------------------------------------------------------------ owner-defined reports

    _INSTANCE_COLS = (
        "id",
        "process",
        "state",
        "status",
        "outcome",
        "variables",
        "meta",
        "created_at",
        "updated_at",
    )

    def instances_in(
        self, since: datetime, until: datetime, processes: Collection[str]
    ) -> Iterator[dict[str, Any]]:
        """Instances of ``processes`` created in ``[since, until)`` with their variables
        and deadline clock, through ``(created_at, id)``: the period is the range."""
        aware(since, "since")
        aware(until, "until")
        process: sa.ColumnElement[str] = instances.c.process
        if self._store.dialect == "sqlite":
            # SQLite would otherwise walk (process, status, ...) for each process named:
            # every instance of it ever started, not the period's. ``process || ''`` is no
            # column to it, so the period's range on (created_at, id) is what it scans.
            process = process.concat("")
        stmt = sa.select(*(instances.c[n] for n in self._INSTANCE_COLS)).where(
            instances.c.created_at >= since,
            instances.c.created_at < until,
            process.in_(list(processes)),
        )
        return self._stream(stmt)

    def closing_entries(
        self, since: datetime, until: datetime, process: str, final_states: Collection[str]
    ) -> Iterator[dict[str, Any]]:
        """Audit entries in ``[since, until)`` that moved an instance of ``process`` into a
        final state, withdrew it or cancelled it with its parent (``engine.links``),
        through ``(at)``: the instances closed in a period."""
        aware(since, "since")
        aware(until, "until")
        stmt = sa.select(audit_log.c.instance_id, audit_log.c.at).where(
            audit_log.c.at >= since,
            audit_log.c.at < until,
            audit_log.c.process == process,
            audit_log.c.instance_id.is_not(None),
            sa.or_(
                audit_log.c.to_state.in_(list(final_states)),
                audit_log.c.action.in_(("withdraw", "cancelled")),
            ),
        )
        return self._stream(stmt)

    def instances_by_id(self, ids: Collection[str]) -> list[dict[str, Any]]:
        """One batch of instances by primary key (callers pass a few hundred at a time)."""
        stmt = sa.select(*(instances.c[n] for n in self._INSTANCE_COLS)).where(
            instances.c.id.in_(list(ids))
        )
        return list(self._stream(stmt))

    def instance_entries(
        self, ids: Collection[str], actions: Collection[str]
    ) -> list[dict[str, Any]]:
        """Audit entries of ``actions`` of a batch of instances, oldest first, through
        ``(chain_key, seq)``: an instance's entries are its chain."""
        stmt = (
            sa.select(audit_log.c.seq, audit_log.c.chain_key, audit_log.c.action, audit_log.c.actor)
            .where(audit_log.c.chain_key.in_(list(ids)), audit_log.c.action.in_(list(actions)))
            .order_by(audit_log.c.chain_key, audit_log.c.seq)
        )
        return list(self._stream(stmt))

    def instance_tasks(self, ids: Collection[str], state: str) -> list[dict[str, Any]]:
        """Tasks of ``state`` of a batch of instances, through ``(instance_id, status)``."""
        names = ("id", "instance_id", "status", "created_at", "due_at", "closed_at")
        stmt = sa.select(*(tasks.c[n] for n in names)).where(
            tasks.c.instance_id.in_(list(ids)), tasks.c.state == state
        )
        return list(self._stream(stmt))

    def register_history_until(self, register: str, until: datetime) -> Iterator[dict[str, Any]]:
        """Every version of the register's rows written before ``until``, by key and
        version (the history's own index), streamed: a register report keeps one key's."""
        h = register_history
        stmt = (
            sa.select(h.c.key, h.c.version, h.c["values"], h.c.at)
            .where(h.c.register == register, h.c.at < until)
            .order_by(h.c.key, h.c.version)
        )
        return self._stream(stmt)
