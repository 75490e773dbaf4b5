"""Task and instance listings of a Store: keyset pages, each one index range scan.

The orders and the indexes that serve them are fixed together (storage.tables and the
migrations); bench/bench_queries.py shows the plans at 100k instances.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from engine.records import Snapshot, TaskRecord
from storage import paging
from storage.base import Database, check_limit
from storage.paging import Page
from storage.rows import aware, snapshot_record, task_record
from storage.tables import audit_log, instances, task_roles, tasks

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Entries on a task that decide nothing: not listed by ``tasks --done-by``.
NOT_DECISIONS = ("denied", "claim", "unclaim", "remind")
# With a filter in Python (four-eyes): candidates read per extra round trip, doubling from
# _MIN_BATCH up to _MAX_BATCH while most are dropped.
_MIN_BATCH = 32
_MAX_BATCH = 1000

Keep = Callable[[TaskRecord, Snapshot], bool]


def _due_order(task: TaskRecord) -> tuple[bool, datetime, str]:
    """The listing order of tasks in Python: by due time, undated last, then by id."""
    return (task.due_at is None, task.due_at or _EPOCH, task.id)


def _after_due(
    due: sa.ColumnElement[Any],
    ident: sa.ColumnElement[Any],
    key: tuple[datetime | None, str] | None,
    dated_only: bool,
) -> list[sa.ColumnElement[bool]]:
    """The index range scans that list (due, ident) after ``key``: dated rows, then undated.

    Two scans rather than one ``ORDER BY due NULLS LAST``: SQLite keeps NULLs first in
    an index and PostgreSQL last, and each scan alone walks an index in either order.
    The ``due >= at`` part is what a planner turns into the range start.
    """
    dated: sa.ColumnElement[bool] = due.is_not(None)
    undated: sa.ColumnElement[bool] | None = due.is_(None)
    if key is not None:
        at, last = key
        if at is None:
            return [] if dated_only else [sa.and_(due.is_(None), ident > last)]
        dated = sa.and_(due >= at, sa.or_(due > at, ident > last))
    if dated_only:
        undated = None
    return [dated] if undated is None else [dated, undated]


def _after_created(key: tuple[datetime, str] | None) -> sa.ColumnElement[bool] | None:
    if key is None:
        return None
    at, last = key
    created = instances.c.created_at
    return sa.and_(created >= at, sa.or_(created > at, instances.c.id > last))


def _task_cursor(task: TaskRecord) -> str:
    return paging.encode("tasks", task.due_at, task.id)


def _task_key(after: str | None) -> tuple[datetime | None, str] | None:
    if after is None:
        return None
    due, ident = paging.decode("tasks", after)
    return due, ident


def _due_order_key(key: tuple[datetime | None, str]) -> tuple[bool, datetime, str]:
    at, ident = key
    return (at is None, at or _EPOCH, ident)


class Listings(Database):
    """The task and instance listings of :class:`~storage.store.Store`."""

    def task_page(
        self,
        *,
        roles: Collection[str] | None = None,
        process: str | None = None,
        status: str | None = "open",
        instance_id: str | None = None,
        overdue_at: datetime | None = None,
        limit: int = 100,
        after: str | None = None,
        keep: Keep | None = None,
    ) -> Page[TaskRecord]:
        """Tasks by due time (undated last), then id; one page after the cursor ``after``.

        ``roles`` selects open tasks awaiting any of them, through ``task_roles`` (the
        pending roles of open tasks only, with their due time, so each role is one index
        range scan in listing order): with ``roles`` given, closed tasks never match.
        ``keep(task, instance)`` is a last filter that SQL cannot express (four-eyes):
        candidates are read in batches until the page is full, so a page is never short
        while later tasks would have qualified. Its ``next`` may then lead to an empty page.
        """
        check_limit(limit)
        key = _task_key(after)
        if roles is not None and (not roles or status not in (None, "open")):
            return Page([])
        batch = limit + 1
        found: list[TaskRecord] = []
        with self._read() as conn:
            for round_ in itertools.count():
                rows = self._task_batch(
                    conn, roles, process, status, instance_id, overdue_at, batch, key
                )
                if keep is None:
                    found = rows[: limit + 1]
                    more = len(found) > limit
                    break
                owners = self._instances_by_id(conn, {t.instance_id for t in rows})
                more = False
                for i, task in enumerate(rows):
                    if keep(task, owners[task.instance_id]):
                        found.append(task)
                        if len(found) == limit:
                            more = i + 1 < len(rows) or len(rows) == batch
                            break
                if len(found) == limit or len(rows) < batch:
                    break
                key = (rows[-1].due_at, rows[-1].id)
                # Refill what was dropped, with room for more drops; grow quickly when
                # a long run of candidates is dropped (a requester's own tasks).
                missing = limit - len(found)
                batch = min(max(2 * missing + 1, _MIN_BATCH << round_), _MAX_BATCH)
        page = found[:limit]
        return Page(page, _task_cursor(page[-1]) if more and page else None)

    def _task_batch(
        self,
        conn: sa.Connection,
        roles: Collection[str] | None,
        process: str | None,
        status: str | None,
        instance_id: str | None,
        overdue_at: datetime | None,
        n: int,
        key: tuple[datetime | None, str] | None,
    ) -> list[TaskRecord]:
        """Up to ``n`` tasks in listing order after ``key``."""
        if instance_id is not None:
            # An instance has a handful of tasks: filter and order them here, so that
            # SQLite (no statistics) does not walk every open task through (status, due_at).
            stmt = sa.select(tasks).where(tasks.c.instance_id == instance_id)
            rows = [task_record(r._mapping) for r in conn.execute(stmt)]
            rows = [
                t
                for t in rows
                if (status is None or t.status == status)
                and (process is None or t.process == process)
                and (overdue_at is None or (t.due_at is not None and t.due_at < overdue_at))
                and (roles is None or set(t.pending_keys) & set(roles))
                and (key is None or _due_order(t) > _due_order_key(key))
            ]
            return sorted(rows, key=_due_order)[:n]
        if roles is not None:
            due, ident = task_roles.c.due_at, task_roles.c.task_id
            joined = task_roles.join(tasks, tasks.c.id == task_roles.c.task_id)
            base = sa.select(tasks).select_from(joined)
            scans = [base.where(task_roles.c.role == role) for role in sorted(roles)]
        else:
            due, ident = tasks.c.due_at, tasks.c.id
            base = sa.select(tasks)
            scans = [base.where(tasks.c.status == status) if status is not None else base]
        if process is not None:
            scans = [s.where(tasks.c.process == process) for s in scans]
        if overdue_at is not None:
            scans = [s.where(due < aware(overdue_at, "overdue_at")) for s in scans]
        found: dict[str, TaskRecord] = {}
        for scan in scans:
            got = 0
            for cond in _after_due(due, ident, key, dated_only=overdue_at is not None):
                stmt = scan.where(cond).order_by(due, ident).limit(n - got)
                for row in conn.execute(stmt):
                    found.setdefault(row.id, task_record(row._mapping))
                    got += 1
                if got >= n:
                    break
        return sorted(found.values(), key=_due_order)[:n]

    def _instances_by_id(self, conn: sa.Connection, ids: Collection[str]) -> dict[str, Snapshot]:
        if not ids:
            return {}
        stmt = sa.select(instances).where(instances.c.id.in_(sorted(ids)))
        return {r.id: snapshot_record(r._mapping) for r in conn.execute(stmt)}

    def instance_versions(self, instance_ids: Collection[str]) -> dict[str, tuple[str, int]]:
        """(process, version) of each instance: what a task list needs to name its tasks."""
        found: dict[str, tuple[str, int]] = {}
        ids = sorted(set(instance_ids))
        cols = (instances.c.id, instances.c.process, instances.c.version)
        with self._read() as conn:
            for start in range(0, len(ids), 500):  # bounded IN lists
                stmt = sa.select(*cols).where(instances.c.id.in_(ids[start : start + 500]))
                found.update((r.id, (r.process, r.version)) for r in conn.execute(stmt))
        return found

    def instance_page(
        self,
        *,
        process: str | None = None,
        state: str | None = None,
        status: str | None = None,
        requester: str | None = None,
        parent: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> Page[Snapshot]:
        """Snapshots without their tasks, oldest first (then by id), after the cursor.

        Each filter combination has an index ending in (created_at, id), so a page is
        one range scan whatever the number of stored instances. ``requester`` ("my
        requests") has (requester, created_at, id) of its own, ``parent`` (a parent's
        children) (parent_id, created_at, id); combined with other filters
        the planner picks one of the indexes and filters the rest.
        """
        check_limit(limit)
        key = paging.decode("instances", after) if after is not None else None
        stmt = sa.select(instances)
        if requester is not None:
            stmt = stmt.where(instances.c.requester == requester)
        if parent is not None:  # a parent's children (linked processes)
            stmt = stmt.where(instances.c.parent_id == parent)
        if process is not None:
            stmt = stmt.where(instances.c.process == process)
        if state is not None:
            stmt = stmt.where(instances.c.state == state)
        if status is not None:
            stmt = stmt.where(instances.c.status == status)
        start = _after_created(key)
        if start is not None:
            stmt = stmt.where(start)
        stmt = stmt.order_by(instances.c.created_at, instances.c.id).limit(limit + 1)
        with self._read() as conn:
            found = [snapshot_record(r._mapping) for r in conn.execute(stmt)]
        page = found[:limit]
        more = len(found) > limit
        nxt = paging.encode("instances", page[-1].created_at, page[-1].id) if more else None
        return Page(page, nxt)

    def decision_page(
        self, actor: str, *, limit: int = 100, after: str | None = None
    ) -> Page[dict[str, Any]]:
        """What ``actor`` decided or signed on tasks (``tasks --done-by``), newest first.

        Read from the audit log rather than ``tasks.decided_by``: a countersign records
        one entry per signer, while the task keeps only its last decider; and the log
        keeps each signer's comment. Newest first is the (actor, seq) index walked
        backwards, one range scan per page; the cursor is the last seq shown.
        """
        check_limit(limit)
        (last,) = paging.decode("done", after) if after is not None else (None,)
        stmt = sa.select(
            audit_log.c.seq,
            audit_log.c.at,
            audit_log.c.actor,
            audit_log.c.on_behalf_of,
            audit_log.c.process,
            audit_log.c.instance_id,
            audit_log.c.task_id,
            audit_log.c.action,
            audit_log.c.from_state,
            audit_log.c.to_state,
            audit_log.c.data,
        ).where(
            audit_log.c.actor == actor,
            audit_log.c.task_id.is_not(None),
            audit_log.c.action.not_in(NOT_DECISIONS),
        )
        if last is not None:
            stmt = stmt.where(audit_log.c.seq < last)
        stmt = stmt.order_by(audit_log.c.seq.desc()).limit(limit + 1)
        with self._read() as conn:
            found = [dict(r) for r in conn.execute(stmt).mappings()]
        page = found[:limit]
        more = len(found) > limit
        return Page(page, paging.encode("done", page[-1]["seq"]) if more else None)

    def tasks_by_id(self, task_ids: Collection[str]) -> dict[str, TaskRecord]:
        """The tasks named (any status), for a listing that names tasks by id."""
        found: dict[str, TaskRecord] = {}
        ids = sorted(set(task_ids))
        with self._read() as conn:
            for start in range(0, len(ids), 500):  # bounded IN lists
                stmt = sa.select(tasks).where(tasks.c.id.in_(ids[start : start + 500]))
                found.update((r.id, task_record(r._mapping)) for r in conn.execute(stmt))
        return found
