"""Persistence of snapshots, tasks, timers, audit and outbox: the only SQL in Shenpi.

The engine hands over an :class:`~engine.records.Outcome`; :meth:`Store.apply` writes all
of it in one transaction guarded by the instance's row version, so a crash or a lost race
leaves either the whole step or nothing. Reads return the frozen records of
``engine.records``, never rows, so nothing above this layer sees SQLAlchemy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect

from engine.errors import Conflict, NotFound
from engine.records import (
    AuditRecord,
    Outcome,
    Signoff,
    Snapshot,
    TaskRecord,
    TimerRecord,
)
from storage.db import SQLITE_BEGIN, migrate, open_engine
from storage.tables import (
    audit_log,
    definitions,
    instances,
    outbox,
    schedule_runs,
    task_roles,
    tasks,
    timers,
)

GENESIS = ""  # prev_hash of the first entry of every chain
HASHED_FIELDS = (
    "at",
    "recorded_at",
    "actor",
    "on_behalf_of",
    "process",
    "instance_id",
    "task_id",
    "action",
    "from_state",
    "to_state",
    "data",
    "chain_key",
    "prev_hash",
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
NOTICE_STATUSES = ("pending", "sent", "failed")
_DEFINITION_RETRIES = 5


def chain_key(record: AuditRecord) -> str:
    """Chains are per instance so PostgreSQL writers on different instances never queue."""
    return record.instance_id if record.instance_id is not None else f"process:{record.process}"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def audit_hash(row: Mapping[str, Any]) -> str:
    """sha256(prev_hash + canonical JSON of every field but seq and hash).

    Canonical means sorted keys, no spaces, UTC datetimes with microseconds: the same
    bytes whether the row comes from SQLite or PostgreSQL (JSONB reorders keys).
    """
    doc = {name: _plain(row[name]) for name in HASHED_FIELDS}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((row["prev_hash"] + text).encode("utf-8")).hexdigest()


def _lock_key(key: str) -> int:
    """A signed 64-bit advisory lock id for a chain key (computed here so it sorts here)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big", signed=True)


def _json_safe(data: Mapping[str, Any]) -> dict[str, Any]:
    """What JSON storage will give back, so the hash is computed over the stored value."""
    return json.loads(json.dumps(data))


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return value


# ---------------------------------------------------------------------- row <-> record


def _task_row(task: TaskRecord) -> dict[str, Any]:
    return {
        "id": task.id,
        "instance_id": task.instance_id,
        "process": task.process,
        "name": task.name,
        "state": task.state,
        "roles": list(task.roles),
        "mode": task.mode,
        "actions": list(task.actions),
        "status": task.status,
        "created_at": task.created_at,
        "due_at": task.due_at,
        "closed_at": task.closed_at,
        "decision": task.decision,
        "decided_by": task.decided_by,
        "signoffs": [s.to_json() for s in task.signoffs],
    }


def _task_update(task: TaskRecord) -> dict[str, Any]:
    row = _task_row(task)
    row["p_id"] = row.pop("id")
    return row


def _task_record(row: Any) -> TaskRecord:
    return TaskRecord(
        id=row.id,
        instance_id=row.instance_id,
        process=row.process,
        name=row.name,
        state=row.state,
        roles=tuple(row.roles),
        mode=row.mode,
        actions=tuple(row.actions),
        status=row.status,
        created_at=row.created_at,
        due_at=row.due_at,
        closed_at=row.closed_at,
        decision=row.decision,
        decided_by=row.decided_by,
        signoffs=tuple(Signoff.from_json(s) for s in row.signoffs),
    )


def _snapshot(row: Any, open_tasks: Sequence[TaskRecord] = ()) -> Snapshot:
    return Snapshot(
        id=row.id,
        process=row.process,
        version=row.version,
        state=row.state,
        status=row.status,
        variables=row.variables,
        requester=row.requester,
        created_at=row.created_at,
        updated_at=row.updated_at,
        row_version=row.row_version,
        tasks=tuple(open_tasks),
        task_seq=row.task_seq,
        approvers=tuple(row.approvers),
        outcome=row.outcome,
    )


def _timer_record(row: Any) -> TimerRecord:
    return TimerRecord(
        id=row.id,
        instance_id=row.instance_id,
        kind=row.kind,
        due_at=row.due_at,
        state=row.state,
        task_id=row.task_id,
        data=row.data,
    )


def _ordered_tasks(stmt: sa.Select[Any]) -> sa.Select[Any]:
    return stmt.order_by(sa.nulls_last(tasks.c.due_at.asc()), *_OPENING_ORDER)


# Task ids are "<instance>-<n>": within one instant, shorter ids first puts -9 before -10.
_OPENING_ORDER = (tasks.c.created_at, sa.func.length(tasks.c.id), tasks.c.id)


# ---------------------------------------------------------------------- statements
# Built once: SQLAlchemy caches their compiled form, which matters on the apply() path.

_UPDATE_INSTANCE = (
    sa.update(instances)
    .where(
        instances.c.id == sa.bindparam("p_id"),
        instances.c.row_version == sa.bindparam("p_expected"),
    )
    .values(
        state=sa.bindparam("p_state"),
        status=sa.bindparam("p_status"),
        outcome=sa.bindparam("p_outcome"),
        variables=sa.bindparam("p_variables", type_=instances.c.variables.type),
        task_seq=sa.bindparam("p_task_seq"),
        approvers=sa.bindparam("p_approvers", type_=instances.c.approvers.type),
        updated_at=sa.bindparam("p_updated_at", type_=instances.c.updated_at.type),
        row_version=instances.c.row_version + 1,
    )
)
_FIRE_TIMER = (
    sa.update(timers)
    .where(timers.c.id == sa.bindparam("p_id"), timers.c.status == "pending")
    .values(status="fired", fired_at=sa.bindparam("p_at", type_=timers.c.fired_at.type))
)
_INSERT_TASK = sa.insert(tasks)
_UPDATE_TASK = sa.update(tasks).where(tasks.c.id == sa.bindparam("p_id"))
_DELETE_TASK_ROLES = sa.delete(task_roles).where(
    task_roles.c.task_id.in_(sa.bindparam("p_ids", expanding=True))
)
_INSERT_TASK_ROLE = sa.insert(task_roles)
_LAST_HASH = (
    sa.select(audit_log.c.hash)
    .where(audit_log.c.chain_key == sa.bindparam("p_key"))
    .order_by(audit_log.c.seq.desc())
    .limit(1)
)
_INSERT_AUDIT = sa.insert(audit_log).returning(audit_log.c.seq, sort_by_parameter_order=True)
_CANCEL_TIMERS = (
    sa.update(timers)
    .where(
        timers.c.id.in_(sa.bindparam("p_ids", expanding=True)),
        timers.c.status == "pending",
    )
    .values(status="cancelled")
)
_CANCEL_STATE_TIMERS = (
    sa.update(timers)
    .where(
        timers.c.instance_id == sa.bindparam("p_instance"),
        timers.c.status == "pending",
        timers.c.state.in_(sa.bindparam("p_states", expanding=True)),
    )
    .values(status="cancelled")
)
_INSERT_OUTBOX = sa.insert(outbox)
_INSTANCE_BY_ID = sa.select(instances).where(instances.c.id == sa.bindparam("p_id"))
_OPEN_TASKS_OF = (
    sa.select(tasks)
    .where(tasks.c.instance_id == sa.bindparam("p_id"), tasks.c.status == "open")
    .order_by(*_OPENING_ORDER)
)
_TASK_BY_ID = sa.select(tasks).where(tasks.c.id == sa.bindparam("p_id"))


class Store:
    """The database behind one Shenpi installation. Thread-safe (the engine pools)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._pg = self.dialect == "postgresql"
        insert = postgresql.insert if self._pg else sqlite_dialect.insert
        # preserve_rowcount: SQLAlchemy reports INSERT rowcounts only when asked to, and
        # "0 rows" is how ON CONFLICT DO NOTHING says "someone else got there first".
        self._insert_instance = (
            insert(instances)
            .on_conflict_do_nothing(index_elements=["id"])
            .execution_options(preserve_rowcount=True)
        )
        self._insert_timer = insert(timers).on_conflict_do_nothing(index_elements=["id"])
        self._insert_schedule_run = (
            insert(schedule_runs)
            .on_conflict_do_nothing(index_elements=["schedule", "planned_at"])
            .execution_options(preserve_rowcount=True)
        )

    @classmethod
    def open(cls, url: str) -> Store:
        """Open (and on first use create or upgrade) the database at ``url``."""
        engine = open_engine(url)
        try:
            migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

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
    def _read(self) -> Iterator[sa.Connection]:
        """One consistent read (SQLite: deferred BEGIN, so readers never wait for writers)."""
        with self.engine.connect() as conn:
            conn.execution_options(**{SQLITE_BEGIN: "DEFERRED"})
            with conn.begin():
                yield conn

    # ------------------------------------------------------------------ writing a step

    def apply(
        self, outcome: Outcome, recorded_at: datetime, fired_timer: str | None = None
    ) -> list[int]:
        """Write one step atomically; returns the audit seqs. Raises Conflict if it lost a race.

        The instance row is written first: on PostgreSQL that row lock is what orders
        concurrent steps on one instance, and a loser finds out before doing more work.
        """
        _aware(recorded_at, "recorded_at")
        snap = outcome.snapshot
        with self._write() as conn:
            if outcome.expected_row_version is None:
                result = conn.execute(
                    self._insert_instance,
                    {
                        "id": snap.id,
                        "process": snap.process,
                        "version": snap.version,
                        "state": snap.state,
                        "status": snap.status,
                        "outcome": snap.outcome,
                        "variables": snap.variables,
                        "requester": snap.requester,
                        "task_seq": snap.task_seq,
                        "approvers": list(snap.approvers),
                        "created_at": snap.created_at,
                        "updated_at": snap.updated_at,
                        "row_version": snap.row_version,
                    },
                )
                if result.rowcount != 1:
                    raise Conflict(snap.id, "an instance with this id already exists")
            else:
                result = conn.execute(
                    _UPDATE_INSTANCE,
                    {
                        "p_id": snap.id,
                        "p_expected": outcome.expected_row_version,
                        "p_state": snap.state,
                        "p_status": snap.status,
                        "p_outcome": snap.outcome,
                        "p_variables": snap.variables,
                        "p_task_seq": snap.task_seq,
                        "p_approvers": list(snap.approvers),
                        "p_updated_at": snap.updated_at,
                    },
                )
                if result.rowcount != 1:
                    raise Conflict(snap.id)
            if fired_timer is not None:
                result = conn.execute(_FIRE_TIMER, {"p_id": fired_timer, "p_at": recorded_at})
                if result.rowcount != 1:
                    raise Conflict(
                        snap.id, f"timer {fired_timer} has already fired or was cancelled"
                    )
            if outcome.opened:
                conn.execute(_INSERT_TASK, [_task_row(t) for t in outcome.opened])
            if outcome.changed:
                conn.execute(_UPDATE_TASK, [_task_update(t) for t in outcome.changed])
                conn.execute(_DELETE_TASK_ROLES, {"p_ids": [t.id for t in outcome.changed]})
            pending = {
                (t.id, role)
                for t in (*outcome.opened, *outcome.changed)
                for role in t.pending_roles
            }
            if pending:
                conn.execute(
                    _INSERT_TASK_ROLE, [{"task_id": i, "role": r} for i, r in sorted(pending)]
                )
            seqs = self._append_audit(conn, outcome.audit, recorded_at)
            if outcome.timers_cancelled:
                conn.execute(_CANCEL_TIMERS, {"p_ids": list(outcome.timers_cancelled)})
            if outcome.timers_cancel_states:
                conn.execute(
                    _CANCEL_STATE_TIMERS,
                    {"p_instance": snap.id, "p_states": list(outcome.timers_cancel_states)},
                )
            if outcome.timers_set:
                conn.execute(
                    self._insert_timer,
                    [
                        {
                            "id": t.id,
                            "instance_id": t.instance_id,
                            "kind": t.kind,
                            "state": t.state,
                            "task_id": t.task_id,
                            "due_at": t.due_at,
                            "status": "pending",
                            "data": t.data,
                            "created_at": recorded_at,
                            "fired_at": None,
                        }
                        for t in outcome.timers_set
                    ],
                )
            if outcome.notices:
                conn.execute(
                    _INSERT_OUTBOX,
                    [
                        {
                            "created_at": recorded_at,
                            "event": n.event,
                            "recipients": list(n.recipients),
                            "instance_id": n.instance_id,
                            "task_id": n.task_id,
                            "data": n.data,
                            "status": "pending",
                            "attempts": 0,
                            "sent_at": None,
                            "last_error": None,
                        }
                        for n in outcome.notices
                    ],
                )
        return seqs

    # ------------------------------------------------------------------ audit

    def append_audit(self, records: Sequence[AuditRecord], recorded_at: datetime) -> list[int]:
        """Audit entries that belong to no step (deploys, refused actions), committed alone."""
        _aware(recorded_at, "recorded_at")
        if not records:
            return []
        with self._write() as conn:
            return self._append_audit(conn, records, recorded_at)

    def _append_audit(
        self, conn: sa.Connection, records: Sequence[AuditRecord], recorded_at: datetime
    ) -> list[int]:
        if not records:
            return []
        keys = sorted({chain_key(r) for r in records})
        if self._pg:
            # The chain tip must not move between reading it and appending to it. SQLite's
            # BEGIN IMMEDIATE already excludes other writers; PostgreSQL needs a lock, per
            # chain so unrelated instances proceed in parallel. Sorted: no deadlocks.
            for lock in sorted({_lock_key(k) for k in keys}):
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
        tips = {k: conn.execute(_LAST_HASH, {"p_key": k}).scalar() or GENESIS for k in keys}
        rows = []
        for record in records:
            key = chain_key(record)
            row = {
                "at": _aware(record.at, "audit at"),
                "recorded_at": recorded_at,
                "actor": record.actor,
                "on_behalf_of": record.on_behalf_of,
                "process": record.process,
                "instance_id": record.instance_id,
                "task_id": record.task_id,
                "action": record.action,
                "from_state": record.from_state,
                "to_state": record.to_state,
                "data": _json_safe(record.data),
                "chain_key": key,
                "prev_hash": tips[key],
            }
            row["hash"] = tips[key] = audit_hash(row)
            rows.append(row)
        return list(conn.execute(_INSERT_AUDIT, rows).scalars())

    def query_audit(
        self,
        *,
        instance_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        process: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 10000,
    ) -> list[dict[str, Any]]:
        """Entries in seq order; ``since``/``until`` bound the effective time, both inclusive."""
        stmt = sa.select(*(audit_log.c[k] for k in AUDIT_KEYS))
        if instance_id is not None:
            stmt = stmt.where(audit_log.c.instance_id == instance_id)
        if actor is not None:
            stmt = stmt.where(sa.or_(audit_log.c.actor == actor, audit_log.c.on_behalf_of == actor))
        if action is not None:
            stmt = stmt.where(audit_log.c.action == action)
        if process is not None:
            stmt = stmt.where(audit_log.c.process == process)
        if since is not None:
            stmt = stmt.where(audit_log.c.at >= since)
        if until is not None:
            stmt = stmt.where(audit_log.c.at <= until)
        stmt = stmt.order_by(audit_log.c.seq).limit(limit)
        with self._read() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def verify_audit(self) -> list[str]:
        """Recompute every chain; each problem names the seq where the chain breaks.

        A changed row shows as a hash mismatch, a removed or inserted row as a broken
        link at the next entry of its chain. Removing the newest entries of a chain
        cannot be seen from the chain alone (compare counts or tips with a copy for that).
        """
        problems: list[str] = []
        tips: dict[str, tuple[int, str]] = {}
        stmt = sa.select(audit_log).order_by(audit_log.c.seq)
        with self._read() as conn:
            for row in conn.execution_options(yield_per=2000).execute(stmt).mappings():
                seq, key = row["seq"], row["chain_key"]
                expected_key = row["instance_id"] or f"process:{row['process']}"
                if key != expected_key:
                    problems.append(f"seq {seq}: chain key {key!r} does not match its row")
                prev_seq, prev_hash = tips.get(key, (None, GENESIS))
                if row["prev_hash"] != prev_hash:
                    after = f"seq {prev_seq}" if prev_seq is not None else "the chain start"
                    problems.append(
                        f"seq {seq}: prev_hash does not link to {after} of chain {key!r} "
                        "(an entry was removed, inserted or reordered)"
                    )
                if audit_hash(row) != row["hash"]:
                    problems.append(f"seq {seq}: hash mismatch (the entry was altered)")
                tips[key] = (seq, row["hash"])
        return problems

    # ------------------------------------------------------------------ instances & tasks

    def load_snapshot(self, instance_id: str) -> Snapshot:
        with self._read() as conn:
            row = conn.execute(_INSTANCE_BY_ID, {"p_id": instance_id}).first()
            if row is None:
                raise NotFound("instance", instance_id, "list instances with 'instances'")
            open_tasks = [
                _task_record(t) for t in conn.execute(_OPEN_TASKS_OF, {"p_id": instance_id})
            ]
        return _snapshot(row, open_tasks)

    def get_task(self, task_id: str) -> TaskRecord:
        with self._read() as conn:
            row = conn.execute(_TASK_BY_ID, {"p_id": task_id}).first()
        if row is None:
            raise NotFound("task", task_id, "list open tasks with 'tasks'")
        return _task_record(row)

    def list_tasks(
        self,
        *,
        roles: Collection[str] | None = None,
        process: str | None = None,
        status: str | None = "open",
        instance_id: str | None = None,
        overdue_at: datetime | None = None,
        limit: int = 1000,
    ) -> list[TaskRecord]:
        """Tasks by due date (undated last). ``roles`` selects open tasks awaiting any of them.

        The role filter goes through ``task_roles``, which holds pending roles of open
        tasks only, so with ``roles`` given closed tasks never match whatever ``status``.
        """
        stmt = sa.select(tasks)
        if roles is not None:
            if not roles:
                return []
            stmt = stmt.where(
                tasks.c.id.in_(
                    sa.select(task_roles.c.task_id).where(task_roles.c.role.in_(sorted(roles)))
                )
            )
        if process is not None:
            stmt = stmt.where(tasks.c.process == process)
        if status is not None:
            stmt = stmt.where(tasks.c.status == status)
        if instance_id is not None:
            stmt = stmt.where(tasks.c.instance_id == instance_id)
        if overdue_at is not None:
            stmt = stmt.where(tasks.c.due_at < overdue_at)
        stmt = _ordered_tasks(stmt).limit(limit)
        with self._read() as conn:
            return [_task_record(r) for r in conn.execute(stmt)]

    def instance_tasks(self, instance_id: str) -> list[TaskRecord]:
        """Every task the instance ever had, open and closed, in the order they opened."""
        stmt = (
            sa.select(tasks)
            .where(tasks.c.instance_id == instance_id)
            .order_by(*_OPENING_ORDER)
        )
        with self._read() as conn:
            return [_task_record(r) for r in conn.execute(stmt)]

    def list_instances(
        self,
        *,
        process: str | None = None,
        state: str | None = None,
        status: str | None = None,
        limit: int = 1000,
    ) -> list[Snapshot]:
        """Snapshots without their tasks, oldest first."""
        stmt = sa.select(instances)
        if process is not None:
            stmt = stmt.where(instances.c.process == process)
        if state is not None:
            stmt = stmt.where(instances.c.state == state)
        if status is not None:
            stmt = stmt.where(instances.c.status == status)
        stmt = stmt.order_by(instances.c.created_at, instances.c.id).limit(limit)
        with self._read() as conn:
            return [_snapshot(r) for r in conn.execute(stmt)]

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
        """Store a new version unless this exact source is already deployed.

        Two deployers racing on PostgreSQL both compute max+1; the loser hits the
        primary key (or the unique hash) and simply tries again, then sees the winner.
        """
        for attempt in range(_DEFINITION_RETRIES):
            try:
                with self._write() as conn:
                    existing = conn.execute(
                        sa.select(definitions.c.version).where(
                            definitions.c.process == process,
                            definitions.c.source_hash == source_hash,
                        )
                    ).scalar()
                    if existing is not None:
                        return int(existing), False
                    top = conn.execute(
                        sa.select(sa.func.max(definitions.c.version)).where(
                            definitions.c.process == process
                        )
                    ).scalar()
                    version = int(top or 0) + 1
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
            sa.select(
                definitions.c.process, sa.func.max(definitions.c.version).label("version")
            )
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

    def due_timers(self, now: datetime, limit: int = 500) -> list[TimerRecord]:
        """Pending timers due by ``now``, oldest first. Several workers may see the same
        timer; ``apply(..., fired_timer=id)`` lets exactly one of them fire it."""
        stmt = (
            sa.select(timers)
            .where(timers.c.status == "pending", timers.c.due_at <= _aware(now, "now"))
            .order_by(timers.c.due_at, timers.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [_timer_record(r) for r in conn.execute(stmt)]

    def instance_timers(self, instance_id: str) -> list[dict[str, Any]]:
        stmt = (
            sa.select(timers)
            .where(timers.c.instance_id == instance_id)
            .order_by(timers.c.due_at, timers.c.id)
        )
        with self._read() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def next_timer_due(self) -> datetime | None:
        stmt = sa.select(sa.func.min(timers.c.due_at)).where(timers.c.status == "pending")
        with self._read() as conn:
            return conn.execute(stmt).scalar()

    def cancel_timer(self, timer_id: str) -> bool:
        """Retire a pending timer that has nothing left to do (e.g. its instance completed);
        False if it was no longer pending."""
        stmt = (
            sa.update(timers)
            .where(timers.c.id == timer_id, timers.c.status == "pending")
            .values(status="cancelled")
        )
        with self._write() as conn:
            return conn.execute(stmt).rowcount == 1

    # ------------------------------------------------------------------ schedules

    def claim_schedule_run(self, schedule: str, planned_at: datetime, started_at: datetime) -> bool:
        """True for exactly one caller per (schedule, planned_at), across processes.

        ``ON CONFLICT DO NOTHING`` makes a racing PostgreSQL insert wait for the other
        transaction and then report no row, instead of raising.
        """
        with self._write() as conn:
            result = conn.execute(
                self._insert_schedule_run,
                {
                    "schedule": schedule,
                    "planned_at": _aware(planned_at, "planned_at"),
                    "started_at": _aware(started_at, "started_at"),
                    "instance_id": None,
                },
            )
            return result.rowcount == 1

    def set_schedule_instance(self, schedule: str, planned_at: datetime, instance_id: str) -> None:
        stmt = (
            sa.update(schedule_runs)
            .where(schedule_runs.c.schedule == schedule, schedule_runs.c.planned_at == planned_at)
            .values(instance_id=instance_id)
        )
        with self._write() as conn:
            if conn.execute(stmt).rowcount != 1:
                raise NotFound("schedule run", f"{schedule} at {planned_at.isoformat()}")

    # ------------------------------------------------------------------ outbox

    def pending_notices(self, limit: int = 100) -> list[dict[str, Any]]:
        stmt = (
            sa.select(outbox).where(outbox.c.status == "pending").order_by(outbox.c.id).limit(limit)
        )
        with self._read() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def mark_notice(
        self, id: int, status: str, error: str | None = None, at: datetime | None = None
    ) -> None:
        """Record one delivery attempt. ``pending`` with an error means "retry later"."""
        if status not in NOTICE_STATUSES:
            raise ValueError(f"notice status must be one of {NOTICE_STATUSES}, not {status!r}")
        at = _aware(at, "at") if at is not None else datetime.now(UTC)
        stmt = (
            sa.update(outbox)
            .where(outbox.c.id == id)
            .values(
                status=status,
                attempts=outbox.c.attempts + 1,
                last_error=error,
                sent_at=at if status == "sent" else None,
            )
        )
        with self._write() as conn:
            if conn.execute(stmt).rowcount != 1:
                raise NotFound("notice", id)
