"""Persistence of snapshots, tasks, timers, audit and outbox: the only SQL in Shenpi.

The engine hands over an :class:`~engine.records.Outcome`; :meth:`Store.apply` writes all
of it in one transaction guarded by the instance's row version, so a crash or a lost race
leaves either the whole step or nothing. Reads return the frozen records of
``engine.records``, never rows, so nothing above this layer sees SQLAlchemy.
The per-action statements (apply, snapshot and task reads) live in ``storage.steps`` on
the DBAPI cursor for speed; everything else is SQLAlchemy Core.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from engine.errors import Conflict, InvalidData, NotFound
from engine.records import (
    AuditRecord,
    Notice,
    Outcome,
    Snapshot,
    TaskRecord,
    TimerRecord,
)
from storage import paging
from storage.auditchain import AuditCheck, AuditHead, ChainChecker
from storage.audithash import head_digest
from storage.auditkeys import AuditKeys
from storage.db import SQLITE_BEGIN, open_database
from storage.deliveries import DeliveryQueue
from storage.paging import Page
from storage.rows import aware, snapshot_record, task_record, timer_record
from storage.steps import StepWriter
from storage.tables import (
    audit_chains,
    audit_log,
    definitions,
    instances,
    outbox,
    schedule_runs,
    task_roles,
    tasks,
    timers,
)

AUDIT_KEYS = (
    "seq",
    "at",
    "recorded_at",
    "actor",
    "on_behalf_of",
    "instance_id",
    "process",
    "task_id",
    "action",
    "from_state",
    "to_state",
    "data",
    "hash",
)
_DEFINITION_RETRIES = 5


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidData("limit", f"must be a whole number of at least 1, not {limit!r}")


class Store:
    """The database behind one Shenpi installation. Thread-safe (the engine pools)."""

    def __init__(self, engine: sa.Engine, audit_keys: AuditKeys | None = None) -> None:
        """``audit_keys`` default to the environment (storage.auditkeys)."""
        self.engine = engine
        self.dialect = engine.dialect.name
        self.audit_keys = audit_keys if audit_keys is not None else AuditKeys.from_env()
        self._steps = StepWriter(engine, self.audit_keys)
        self.deliveries = DeliveryQueue(self)

    @classmethod
    def open(cls, url: str, audit_keys: AuditKeys | None = None) -> Store:
        """Open (and on first use create or upgrade) the database at ``url``."""
        # The key first: a bad one must not leave a new database behind.
        keys = audit_keys if audit_keys is not None else AuditKeys.from_env()
        return cls(open_database(url), keys)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    # ------------------------------------------------------------------ writing a step

    def apply(
        self,
        outcome: Outcome,
        recorded_at: datetime,
        fired_timer: str | None = None,
        schedule_run: tuple[str, datetime] | None = None,
    ) -> list[int]:
        """Write one step atomically; returns its audit seqs. Conflict if it lost a race.

        Also Conflict when ``fired_timer`` is no longer pending, or when ``schedule_run``
        (schedule key, planned slot) was already claimed: several workers may pick up the
        same due timer or slot, and this is where all but one of them find out, in the
        same transaction that would have applied the effect.
        """
        plan = self._steps.plan(outcome, recorded_at, fired_timer)
        with self._steps.transaction(write=True) as cur:
            if schedule_run is not None:
                key, planned = schedule_run
                params = {
                    "schedule": key,
                    "planned_at": self._steps.bind.when(aware(planned, "planned_at")),
                    "started_at": self._steps.bind.when(aware(recorded_at, "recorded_at")),
                    "instance_id": outcome.snapshot.id,
                }
                if self._steps.run(cur, self._steps.CLAIM_SCHEDULE, params).rowcount != 1:
                    raise Conflict(outcome.snapshot.id, f"schedule {key} at {planned} already ran")
            return self._steps.execute(cur, plan)

    def fail_schedule_run(
        self,
        schedule: str,
        planned_at: datetime,
        audit: AuditRecord,
        notices: Sequence[Notice],
        recorded_at: datetime,
    ) -> list[int]:
        """Record a slot that could not start: claim it (no instance), audit why, notify.

        One transaction, so exactly one worker records the failure and sends its notices,
        and the slot is not retried on every tick (the next slot runs as usual). Conflict
        when the slot was already claimed.
        """
        rows = self._steps.audit_rows([audit], recorded_at)
        recorded = self._steps.bind.when(aware(recorded_at, "recorded_at"))
        params = {
            "schedule": schedule,
            "planned_at": self._steps.bind.when(aware(planned_at, "planned_at")),
            "started_at": recorded,
            "instance_id": None,
        }
        with self._steps.transaction(write=True) as cur:
            if self._steps.run(cur, self._steps.CLAIM_SCHEDULE, params).rowcount != 1:
                raise Conflict(schedule, f"schedule {schedule} at {planned_at} already ran")
            seqs = self._steps.append_audit(cur, rows)
            self._steps.many(
                cur, self._steps.INSERT_OUTBOX, self._steps.notice_rows(notices, recorded)
            )
            return seqs

    def last_schedule_run(self, schedule: str) -> datetime | None:
        """The latest slot of ``schedule`` that ran (or None): where catch-up starts."""
        stmt = sa.select(sa.func.max(schedule_runs.c.planned_at)).where(
            schedule_runs.c.schedule == schedule
        )
        with self._read() as conn:
            value = conn.execute(stmt).scalar()
        if isinstance(value, str):  # SQLite aggregate loses the column type
            value = datetime.fromisoformat(value)
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def apply_batch(
        self, steps: Sequence[tuple[Outcome, str | None]], recorded_at: datetime
    ) -> list[list[int] | Conflict]:
        """Many independent steps (outcome, fired_timer) in one transaction: one fsync.

        For ``tick`` and bulk starts, where a commit per step would make the disk, not
        the work, the limit. Each step still applies completely or not at all (see
        ``StepWriter.execute_batch``): a step that loses its race gets its Conflict in the
        result list, in order, and the others go ahead. Any other error aborts the whole
        batch. The caller bounds the batch: on PostgreSQL each step holds a lock slot (its
        audit chain's advisory lock) until the commit.
        """
        plans = [self._steps.plan(outcome, recorded_at, fired) for outcome, fired in steps]
        if not plans:
            return []
        with self._steps.transaction(write=True) as cur:
            return self._steps.execute_batch(cur, plans)

    # ------------------------------------------------------------------ audit

    def append_audit(self, records: Sequence[AuditRecord], recorded_at: datetime) -> list[int]:
        """Audit entries that belong to no step (deploys, refused actions), committed alone."""
        aware(recorded_at, "recorded_at")
        if not records:
            return []
        rows = self._steps.audit_rows(records, recorded_at)
        with self._steps.transaction(write=True) as cur:
            return self._steps.append_audit(cur, rows)

    def query_audit(
        self,
        *,
        instance_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        process: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every matching entry (or the first ``limit``), read page by page through
        :meth:`audit_page`: an instance's history in ``show`` must never be cut short."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        while limit is None or len(found) < limit:
            want = _MAX_BATCH if limit is None else min(_MAX_BATCH, limit - len(found))
            page = self.audit_page(
                instance_id=instance_id,
                actor=actor,
                action=action,
                process=process,
                since=since,
                until=until,
                limit=want,
                after=after,
            )
            found.extend(page.items)
            if page.next is None:
                break
            after = page.next
        return found

    def audit_page(
        self,
        *,
        instance_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        process: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> Page[dict[str, Any]]:
        """Entries in seq order after the cursor; ``since``/``until`` bound the effective
        time, both inclusive.

        ``actor`` matches the actor or the person acted for. An OR of two columns would
        defeat both indexes, so it is two index range scans, (actor, seq) and
        (on_behalf_of, seq), each stopping after a page, merged here.
        """
        _check_limit(limit)
        (last,) = paging.decode("audit", after) if after is not None else (None,)
        stmt = sa.select(*(audit_log.c[k] for k in AUDIT_KEYS))
        if instance_id is not None:
            stmt = stmt.where(audit_log.c.instance_id == instance_id)
        if action is not None:
            stmt = stmt.where(audit_log.c.action == action)
        if process is not None:
            stmt = stmt.where(audit_log.c.process == process)
        if since is not None:
            stmt = stmt.where(audit_log.c.at >= since)
        if until is not None:
            stmt = stmt.where(audit_log.c.at <= until)
        if last is not None:
            stmt = stmt.where(audit_log.c.seq > last)
        if actor is None:
            scans = [stmt]
        else:
            scans = [
                stmt.where(audit_log.c.actor == actor),
                stmt.where(audit_log.c.on_behalf_of == actor),
            ]
        found: dict[int, dict[str, Any]] = {}
        with self._read() as conn:
            for scan in scans:
                for r in conn.execute(scan.order_by(audit_log.c.seq).limit(limit + 1)).mappings():
                    found[r["seq"]] = dict(r)
        rows = [found[seq] for seq in sorted(found)][: limit + 1]
        page = rows[:limit]
        more = len(rows) > limit
        return Page(page, paging.encode("audit", page[-1]["seq"]) if more else None)

    def check_audit(self, head: AuditHead | None = None, require_key: bool = False) -> AuditCheck:
        """Recompute every chain and compare it with its anchor (and ``head``, if kept).

        One snapshot for the whole check (REPEATABLE READ on PostgreSQL), so entries
        appended meanwhile cannot look like a mismatch between log and anchors. What is
        and is not detected: storage.auditchain and the README.
        """
        checker = ChainChecker(self.audit_keys, head, require_key)
        log = sa.select(audit_log).order_by(audit_log.c.seq)
        with self._snapshot() as conn:
            for row in conn.execution_options(yield_per=2000).execute(log).mappings():
                checker.entry(row)
            checker.anchors(conn.execute(sa.select(audit_chains)).mappings())
            ids = conn.execution_options(yield_per=5000).execute(sa.select(instances.c.id))
            checker.instances(r[0] for r in ids)
        return checker.finish()

    def audit_head(self) -> tuple[AuditHead, int]:
        """The head of the log now (and how many of its entries are unkeyed).

        On PostgreSQL entries can commit out of seq order, so a plain read could see seq
        101 while 100 is still to commit, and a later check would count 100 in. A SHARE
        lock waits for every open append and holds new ones (a few ms) while reading.
        """
        last = sa.func.max(audit_log.c.seq).label("last")
        per_chain = (
            sa.select(audit_log.c.chain_key, last, sa.func.count().label("n"))
            .group_by(audit_log.c.chain_key)
            .subquery()
        )
        heads = sa.select(
            audit_log.c.chain_key, audit_log.c.seq, audit_log.c.hash, per_chain.c.n
        ).join(per_chain, audit_log.c.seq == per_chain.c.last)
        unkeyed = sa.select(sa.func.count()).where(audit_log.c.key_id.is_(None))
        with self._read() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql("LOCK TABLE audit_log IN SHARE MODE")
            rows = conn.execute(heads).all()
            plain = conn.execute(unkeyed).scalar_one()
        tips = {key: (seq, digest) for key, seq, digest, _ in rows}
        head = AuditHead(
            seq=max((seq for seq, _ in tips.values()), default=0),
            entries=sum(n for *_, n in rows),
            chains=len(tips),
            digest=head_digest(tips),
        )
        return head, plain

    # ------------------------------------------------------------------ instances & tasks

    def load_snapshot(self, instance_id: str) -> Snapshot:
        """The instance with its open tasks, read in one consistent transaction."""
        with self._steps.transaction(write=False) as cur:
            snap = self._steps.load_snapshot(cur, instance_id)
        if snap is None:
            raise NotFound("instance", instance_id, "list instances with 'instances'")
        return snap

    def load_snapshots(self, instance_ids: Sequence[str]) -> dict[str, Snapshot]:
        """Several instances with their open tasks, read in one consistent transaction;
        ids that name no instance are absent from the result."""
        with self._steps.transaction(write=False) as cur:
            return self._steps.load_snapshots(cur, instance_ids)

    def get_task(self, task_id: str) -> TaskRecord:
        with self._steps.transaction(write=False) as cur:
            task = self._steps.get_task(cur, task_id)
        if task is None:
            raise NotFound("task", task_id, "list open tasks with 'tasks'")
        return task

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
        _check_limit(limit)
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
                and (roles is None or set(t.pending_roles) & set(roles))
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
        limit: int = 100,
        after: str | None = None,
    ) -> Page[Snapshot]:
        """Snapshots without their tasks, oldest first (then by id), after the cursor.

        Each filter combination has an index ending in (created_at, id), so a page is
        one range scan whatever the number of stored instances.
        """
        _check_limit(limit)
        key = paging.decode("instances", after) if after is not None else None
        stmt = sa.select(instances)
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

    # ------------------------------------------------------------------ definitions

    def save_definition(
        self,
        process: str,
        source_hash: str,
        source_text: str,
        file: str,
        deployed_at: datetime,
        recorded_at: datetime,
        deployed_by: str,
    ) -> tuple[int, bool]:
        """Store a new version unless this exact source is the latest version already.

        Only the latest counts: redeploying an older text (a rollback) makes it the
        newest version again, so new instances really start on it.
        Two deployers racing on PostgreSQL both compute max+1; the loser hits the
        primary key and simply tries again, then sees the winner.
        """
        for attempt in range(_DEFINITION_RETRIES):
            try:
                with self._write() as conn:
                    latest = conn.execute(
                        sa.select(definitions.c.version, definitions.c.source_hash)
                        .where(definitions.c.process == process)
                        .order_by(definitions.c.version.desc())
                        .limit(1)
                    ).first()
                    if latest is not None and latest.source_hash == source_hash:
                        return int(latest.version), False
                    version = int(latest.version if latest is not None else 0) + 1
                    conn.execute(
                        sa.insert(definitions),
                        {
                            "process": process,
                            "version": version,
                            "source_hash": source_hash,
                            "source_text": source_text,
                            "file": file,
                            "deployed_at": deployed_at,
                            "recorded_at": recorded_at,
                            "deployed_by": deployed_by,
                        },
                    )
                    return version, True
            except sa.exc.IntegrityError:
                if attempt == _DEFINITION_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def get_definition(self, process: str, version: int | None = None) -> dict[str, Any] | None:
        """One deployed version (the latest when ``version`` is None), or None."""
        stmt = sa.select(definitions).where(definitions.c.process == process)
        if version is not None:
            stmt = stmt.where(definitions.c.version == version)
        stmt = stmt.order_by(definitions.c.version.desc()).limit(1)
        with self._read() as conn:
            row = conn.execute(stmt).mappings().first()
        return dict(row) if row is not None else None

    def list_definitions(self) -> list[dict[str, Any]]:
        """The latest version of every process, by name."""
        latest = (
            sa.select(definitions.c.process, sa.func.max(definitions.c.version).label("version"))
            .group_by(definitions.c.process)
            .subquery()
        )
        stmt = (
            sa.select(definitions)
            .join(
                latest,
                sa.and_(
                    definitions.c.process == latest.c.process,
                    definitions.c.version == latest.c.version,
                ),
            )
            .order_by(definitions.c.process)
        )
        with self._read() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    # ------------------------------------------------------------------ timers

    def due_timers(
        self, now: datetime, limit: int = 500, after: tuple[datetime, str] | None = None
    ) -> list[TimerRecord]:
        """Pending timers due by ``now``, oldest first, at most ``limit`` of them.

        ``after`` is a keyset cursor, the ``(due_at, id)`` of the last timer a caller has
        dealt with: the page starts behind it, so a caller can walk a backlog of any size
        in pages of a fixed size, past timers that failed and stay pending, without
        re-reading them. Several workers may see the same timer;
        ``apply(..., fired_timer=id)`` lets exactly one of them fire it.
        """
        stmt = sa.select(timers).where(
            timers.c.status == "pending", timers.c.due_at <= aware(now, "now")
        )
        if after is not None:
            due_at, timer_id = after
            # a row-value comparison: both databases seek to it in (status, due_at, id)
            stmt = stmt.where(
                sa.tuple_(timers.c.due_at, timers.c.id) > (aware(due_at, "after"), timer_id)
            )
        stmt = stmt.order_by(timers.c.due_at, timers.c.id).limit(limit)
        with self._read() as conn:
            return [timer_record(r._mapping) for r in conn.execute(stmt)]

    def instance_timers(self, instance_id: str) -> list[dict[str, Any]]:
        stmt = (
            sa.select(timers)
            .where(timers.c.instance_id == instance_id)
            .order_by(timers.c.due_at, timers.c.id)
        )
        with self._read() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    # ------------------------------------------------------------------ outbox

    def claim_notices(
        self, now: datetime, limit: int = 100, lease: timedelta = timedelta(minutes=5)
    ) -> list[dict[str, Any]]:
        """Take up to ``limit`` notices to send, so that no other worker sends them too.

        Claimed rows turn ``sending``; PostgreSQL workers skip each other's rows (``FOR
        UPDATE SKIP LOCKED``), SQLite serialises claims. A worker that dies mid-send leaves
        its rows ``sending``: after ``lease`` they can be claimed again.
        """
        now = aware(now, "now")
        candidates = sa.or_(
            outbox.c.status == "pending",
            sa.and_(outbox.c.status == "sending", outbox.c.claimed_at < now - lease),
        )
        pick = sa.select(outbox.c.id).where(candidates).order_by(outbox.c.id).limit(limit)
        if self.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        with self._write() as conn:
            ids = [row[0] for row in conn.execute(pick)]
            if not ids:
                return []
            conn.execute(
                sa.update(outbox)
                .where(outbox.c.id.in_(ids))
                .values(status="sending", claimed_at=now)
            )
            rows = conn.execute(sa.select(outbox).where(outbox.c.id.in_(ids)).order_by(outbox.c.id))
            return [dict(r) for r in rows.mappings()]
