"""Persistence of snapshots, tasks, timers, audit and outbox: the only SQL in Shenpi.

The engine hands over an :class:`~engine.records.Outcome`; :meth:`Store.apply` writes all
of it in one transaction guarded by the instance's row version, so a crash or a lost race
leaves either the whole step or nothing. Reads return the frozen records of
``engine.records``, never rows, so nothing above this layer sees SQLAlchemy.
The per-action statements (apply, snapshot and task reads) live in ``storage.steps`` on
the DBAPI cursor for speed; everything else is SQLAlchemy Core. The Store is assembled
from ``storage.auditlog`` and ``storage.listing``, which share ``storage.base``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from engine.errors import Conflict, NotFound
from engine.records import (
    AuditRecord,
    Notice,
    Outcome,
    Snapshot,
    TaskRecord,
    TimerRecord,
)
from storage.auditkeys import AuditKeys
from storage.auditlog import AuditLog
from storage.db import open_database
from storage.deliveries import DeliveryQueue
from storage.listing import Listings
from storage.registers import RegisterTables
from storage.reportdata import ReportData
from storage.rows import aware, timer_record
from storage.tables import (
    definitions,
    outbox,
    schedule_runs,
    timers,
)
from storage.tokens import TokenTable

_DEFINITION_RETRIES = 5


class Store(AuditLog, Listings):
    """The database behind one Shenpi installation. Thread-safe (the engine pools).

    Steps, snapshots, definitions, timers and the outbox are here; the audit log's
    queries are in ``storage.auditlog``, the task and instance listings in
    ``storage.listing``.
    """

    def __init__(self, engine: sa.Engine, audit_keys: AuditKeys | None = None) -> None:
        """``audit_keys`` default to the environment (storage.auditkeys)."""
        keys = audit_keys if audit_keys is not None else AuditKeys.from_env()
        super().__init__(engine, keys)
        self.deliveries = DeliveryQueue(self)
        self.reports = ReportData(self)
        self.tokens = TokenTable(self)
        self.registers = RegisterTables(self)

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
                self._claim_schedule(cur, schedule_run, outcome.snapshot.id, recorded_at)
            return self._steps.execute(cur, plan)

    def _claim_schedule(
        self, cur: Any, schedule_run: tuple[str, datetime], instance_id: str, recorded_at: datetime
    ) -> None:
        key, planned = schedule_run
        params = {
            "schedule": key,
            "planned_at": self._steps.bind.when(aware(planned, "planned_at")),
            "started_at": self._steps.bind.when(aware(recorded_at, "recorded_at")),
            "instance_id": instance_id,
        }
        if self._steps.run(cur, self._steps.CLAIM_SCHEDULE, params).rowcount != 1:
            raise Conflict(instance_id, f"schedule {key} at {planned} already ran")

    def apply_group(
        self,
        outcomes: Sequence[Outcome],
        recorded_at: datetime,
        fired_timer: str | None = None,
        schedule_run: tuple[str, datetime] | None = None,
    ) -> list[list[int]]:
        """Several steps that belong together (one action and the linked instances it
        starts, tells or cancels: ``service.links``) in one transaction, all or none.

        Each instance's row version is checked as ``apply`` checks it, and a Conflict on
        any of them aborts the whole group. ``fired_timer`` and ``schedule_run`` belong to
        the first outcome. The statements run in instance-id order (an instance's own
        steps in the order given), so two groups touching the same instances take
        PostgreSQL's row locks in one order and queue instead of deadlocking.
        """
        if not outcomes:
            return []
        plans = [
            self._steps.plan(o, recorded_at, fired_timer if i == 0 else None, grouped=True)
            for i, o in enumerate(outcomes)
        ]
        results: list[list[int]] = [[] for _ in plans]
        with self._steps.transaction(write=True) as cur:
            if schedule_run is not None:
                self._claim_schedule(cur, schedule_run, outcomes[0].snapshot.id, recorded_at)
            for i in sorted(range(len(plans)), key=lambda i: plans[i].instance_id):
                results[i] = self._steps.execute(cur, plans[i])
        return results

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
        return self.claim_schedule_run(schedule, planned_at, [audit], notices, recorded_at)

    def claim_schedule_run(
        self,
        schedule: str,
        planned_at: datetime,
        audit: Sequence[AuditRecord],
        notices: Sequence[Notice],
        recorded_at: datetime,
    ) -> list[int]:
        """Claim one slot of a schedule that starts no instance (a failed start, a
        scheduled report), with its audit entries and notices, in one transaction:
        whichever worker claims it first writes them, the others get Conflict."""
        rows = self._steps.audit_rows(audit, recorded_at)
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

    # ------------------------------------------------------------------ instances & tasks

    def load_snapshot(self, instance_id: str) -> Snapshot:
        """The instance with its open tasks, read in one statement."""
        with self._steps.transaction(write=False, begin=False) as cur:
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
