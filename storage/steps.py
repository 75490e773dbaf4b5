"""One step of an instance written in one transaction: the statements every action runs.

``Store.apply`` and the snapshot/task reads around it are the whole cost of an action, so
they run as plain SQL on the DBAPI cursor (``storage.cursor``). Values are converted by
``storage.rows`` exactly as the SQLAlchemy types would, so rows written here and through
Core are indistinguishable; the tests run both dialects. Everything that does not need
the database (the :class:`Plan`) is prepared before the transaction starts, so the lock
covers only the statements themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.errors import Conflict, WorkflowError
from engine.records import AuditRecord, Notice, Outcome, RegisterWrite, Snapshot, TaskRecord
from storage import pipeline
from storage.audithash import GENESIS, anchor_mac, entry_document, link_hash, lock_key
from storage.auditkeys import AuditKeys
from storage.cursor import RawSQL
from storage.registers import RegisterWriter
from storage.rows import Binder, audit_entry, aware, snapshot_record, task_record
from storage.tables import (
    audit_chains,
    audit_log,
    instances,
    outbox,
    schedule_runs,
    task_roles,
    tasks,
    timers,
)

_BEFORE_MAX = 10_000  # rows whose state and status are remembered for the next step
# An audit entry ready to link: its row parameters and its hashed document.
AuditRow = tuple[dict[str, Any], dict[str, Any]]


@dataclass
class Plan:
    """One outcome turned into statement parameters, ready before the transaction."""

    instance_id: str
    insert: bool
    instance: dict[str, Any]
    update_sql: str = ""  # the UPDATE of the instance row (unused for an insert)
    fired: dict[str, Any] | None = None
    opened: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    roles_cleared: list[dict[str, Any]] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)
    audit: list[AuditRow] = field(default_factory=list)
    cancel_states: list[dict[str, Any]] = field(default_factory=list)
    timers: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    register_writes: tuple[RegisterWrite, ...] = ()  # applied by RegisterWriter, in order
    recorded_at: datetime | None = None


class StepWriter(RawSQL):
    """Writes steps (and reads the snapshots they start from) for one dialect."""

    def __init__(self, engine: sa.Engine, keys: AuditKeys | None = None) -> None:
        super().__init__(engine)
        self.keys = keys if keys is not None else AuditKeys()
        self.bind = Binder(self.pg)
        self.registers = RegisterWriter(self, self.bind)
        self.instance_cols = [c.name for c in instances.c]
        self.task_cols = [c.name for c in tasks.c]
        self.INSERT_INSTANCE = self.insert(
            instances, self.instance_cols, " ON CONFLICT (id) DO NOTHING"
        )
        # SQLite rewrites the entry of every index holding a column in the SET list, even
        # when the value is the same; state and status are in two listing indexes each.
        # So when the row the step started from is known (``_before``), the UPDATE names
        # only those of the two that change.
        self._updates: dict[tuple[bool, bool], str] = {}
        for new_state in (True, False):
            for new_status in (True, False):
                indexed = ("state",) * new_state + ("status",) * new_status
                changing = (*indexed, "outcome", "variables", "task_seq", "approvers", "meta")
                self._updates[new_state, new_status] = self.sql(
                    f"UPDATE instances SET {self.sets(instances, *changing, 'updated_at')}, "
                    "row_version = row_version + 1 WHERE id = :id AND row_version = :expected"
                )
        self.UPDATE_INSTANCE = self._updates[True, True]
        # (instance id, row version) -> (state, status) of rows read lately: a row at that
        # version has these values, so they only need writing if the step changes them.
        self._before: dict[tuple[str, int], tuple[str, str]] = {}
        self.FIRE_TIMER = self.sql(
            "UPDATE timers SET status = 'fired', fired_at = :at "
            "WHERE id = :id AND status = 'pending'"
        )
        self.CLAIM_SCHEDULE = self.insert(
            schedule_runs,
            ["schedule", "planned_at", "started_at", "instance_id"],
            " ON CONFLICT (schedule, planned_at) DO NOTHING",
        )
        self.INSERT_TASK = self.insert(tasks, self.task_cols)
        self.UPDATE_TASK = self.sql(
            f"UPDATE tasks SET {self.sets(tasks, *self.task_cols[1:])} WHERE id = :id"
        )
        self.DELETE_TASK_ROLES = self.sql("DELETE FROM task_roles WHERE task_id = :task_id")
        self.INSERT_TASK_ROLE = self.insert(task_roles, ["task_id", "role", "due_at"])
        self.CHAIN_HEAD = self.sql(
            "SELECT last_hash, entries FROM audit_chains WHERE chain_key = :chain_key"
        )
        chain_cols = [c.name for c in audit_chains.c]
        self.UPSERT_CHAIN = self.insert(
            audit_chains,
            chain_cols,
            " ON CONFLICT (chain_key) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in chain_cols[1:]),
        )
        audit_cols = [c.name for c in audit_log.c if c.name != "seq"]
        self.INSERT_AUDIT = self.insert(audit_log, audit_cols, " RETURNING seq" if self.pg else "")
        self.CANCEL_STATE = self.sql(
            "UPDATE timers SET status = 'cancelled' WHERE instance_id = :instance_id "
            "AND state = :state AND status = 'pending'"
        )
        self.INSERT_TIMER = self.insert(
            timers, [c.name for c in timers.c], " ON CONFLICT (id) DO NOTHING"
        )
        self.INSERT_OUTBOX = self.insert(outbox, [c.name for c in outbox.c if c.name != "id"])
        self.ADVISORY_LOCK = self.sql("SELECT pg_advisory_xact_lock(:key)")
        task_select = f"SELECT {self.names(self.task_cols)} FROM tasks"
        # Without statistics SQLite prefers the (status, due_at) index here, which means
        # scanning every open task of the installation; name the right one.
        by_instance = "" if self.pg else " INDEXED BY ix_tasks_instance_id_status"
        # An instance and its open tasks in one statement, so that on SQLite the read
        # needs no BEGIN/COMMIT around it (one statement reads one snapshot anyway).
        both = ", ".join(
            [f"i.{self._quote(c)}" for c in self.instance_cols]
            + [f"t.{self._quote(c)}" for c in self.task_cols]
        )
        self.SNAPSHOT = self.sql(
            f"SELECT {both} FROM instances AS i LEFT JOIN tasks AS t{by_instance} "
            "ON t.instance_id = i.id AND t.status = 'open' WHERE i.id = :id "
            "ORDER BY t.created_at, length(t.id), t.id"
        )
        self.TASK = self.sql(f"{task_select} WHERE id = :id")
        # completed with a parenthesised list of ids by load_snapshots (a page at a time)
        assert self.instance_cols[0] == "id"
        self.INSTANCES_IN = f"SELECT {self.names(self.instance_cols)} FROM instances WHERE id IN"
        self.OPEN_TASKS_IN = f"{task_select}{by_instance} WHERE status = 'open' AND instance_id IN"
        self.OPEN_TASKS_ORDER = "ORDER BY instance_id, created_at, length(id), id"

    # ------------------------------------------------------------------ planning

    def audit_rows(self, records: Sequence[AuditRecord], recorded_at: datetime) -> list[AuditRow]:
        """Parameters and hashed document per entry, all but the chain link."""
        out = []
        for rec in records:
            entry = audit_entry(rec, recorded_at)
            out.append((self.bind.audit_params(entry), entry_document(entry)))
        return out

    def plan(
        self,
        outcome: Outcome,
        recorded_at: datetime,
        fired_timer: str | None,
        *,
        grouped: bool = False,
    ) -> Plan:
        """``grouped``: the outcome is written with the linked outcomes it leads to
        (``Store.apply_group``); any other writer refuses an outcome with links, whose
        children or parent would otherwise be silently left out."""
        if outcome.linked and not grouped:
            raise WorkflowError(
                f"instance {outcome.snapshot.id}: this step starts, tells or cancels linked "
                "instances; apply it through service.links (Store.apply_group)"
            )
        snap = outcome.snapshot
        when, json_in = self.bind.when, self.bind.json_in
        recorded = when(aware(recorded_at, "recorded_at"))
        common = {
            "state": snap.state,
            "status": snap.status,
            "outcome": snap.outcome,
            "variables": json_in(snap.variables),
            "task_seq": snap.task_seq,
            "approvers": json_in(list(snap.approvers)),
            "meta": json_in(snap.meta),
            "updated_at": when(snap.updated_at),
        }
        if outcome.expected_row_version is None:
            instance = {
                **common,
                "id": snap.id,
                "process": snap.process,
                "version": snap.version,
                "requester": snap.requester,
                "created_at": when(snap.created_at),
                "row_version": snap.row_version,
                "parent_id": (snap.meta.get("parent") or {}).get("id"),
            }
        else:
            instance = {**common, "id": snap.id, "expected": outcome.expected_row_version}
        plan = Plan(snap.id, outcome.expected_row_version is None, instance)
        if not plan.insert:
            before = self._before.pop((snap.id, instance["expected"]), None)
            plan.update_sql = (
                self.UPDATE_INSTANCE
                if before is None
                else self._updates[before[0] != snap.state, before[1] != snap.status]
            )
        if fired_timer is not None:
            plan.fired = {"id": fired_timer, "at": recorded}
        plan.opened = [self.bind.task_params(t) for t in outcome.opened]
        plan.changed = [self.bind.task_params(t) for t in outcome.changed]
        plan.roles_cleared = [{"task_id": t.id} for t in outcome.changed]
        pending = {
            (t.id, role): t.due_at
            for t in (*outcome.opened, *outcome.changed)
            for role in t.pending_keys
        }
        plan.roles = [
            {"task_id": i, "role": r, "due_at": when(due)}
            for (i, r), due in sorted(pending.items())
        ]
        plan.audit = self.audit_rows(outcome.audit, recorded_at)
        plan.cancel_states = [
            {"instance_id": snap.id, "state": s} for s in outcome.timers_cancel_states
        ]
        plan.timers = [
            {
                "id": t.id,
                "instance_id": t.instance_id,
                "kind": t.kind,
                "state": t.state,
                "task_id": t.task_id,
                "due_at": when(t.due_at),
                "status": "pending",
                "data": json_in(t.data),
                "created_at": recorded,
                "fired_at": None,
            }
            for t in outcome.timers_set
        ]
        plan.notices = self.notice_rows(outcome.notices, recorded)
        plan.register_writes = outcome.register_writes
        plan.recorded_at = recorded_at
        return plan

    def notice_rows(self, notices: Sequence[Notice], recorded: Any) -> list[dict[str, Any]]:
        """Outbox rows for ``notices``, pending, stamped ``recorded`` (already converted)."""
        json_in = self.bind.json_in
        return [
            {
                "created_at": recorded,
                "event": n.event,
                "recipients": json_in(list(n.recipients)),
                "instance_id": n.instance_id,
                "task_id": n.task_id,
                "data": json_in(n.data),
                "status": "pending",
                "attempts": 0,
                "sent_at": None,
                "last_error": None,
                "claimed_at": None,
            }
            for n in notices
        ]

    # ------------------------------------------------------------------ execution

    def execute(self, cur: Any, plan: Plan) -> list[int]:
        """Run a plan inside the caller's transaction; raises Conflict on a lost race.

        The instance row goes first: on PostgreSQL its row lock orders concurrent steps
        on one instance, and a loser learns it before doing any more work.
        """
        if plan.insert:
            if self.run(cur, self.INSERT_INSTANCE, plan.instance).rowcount != 1:
                raise Conflict(plan.instance_id, "an instance with this id already exists")
        elif self.run(cur, plan.update_sql, plan.instance).rowcount != 1:
            raise Conflict(plan.instance_id)
        fired = plan.fired
        if fired is not None and self.run(cur, self.FIRE_TIMER, fired).rowcount != 1:
            raise Conflict(
                plan.instance_id, f"timer {fired['id']} has already fired or was cancelled"
            )
        if plan.register_writes:
            # a row changed since the step read it raises RegisterConflict: the caller's
            # transaction (or savepoint) then writes nothing of the step
            assert plan.recorded_at is not None
            self.registers.apply(cur, plan.register_writes, plan.recorded_at)
        self.many(cur, self.INSERT_TASK, plan.opened)
        self.many(cur, self.UPDATE_TASK, plan.changed)
        self.many(cur, self.DELETE_TASK_ROLES, plan.roles_cleared)
        self.many(cur, self.INSERT_TASK_ROLE, plan.roles)
        seqs = self.append_audit(cur, plan.audit)
        self.many(cur, self.CANCEL_STATE, plan.cancel_states)
        self.many(cur, self.INSERT_TIMER, plan.timers)
        self.many(cur, self.INSERT_OUTBOX, plan.notices)
        return seqs

    def execute_batch(self, cur: Any, plans: Sequence[Plan]) -> list[list[int] | Conflict]:
        """Several plans in one transaction, each all-or-nothing on its own.

        Plans run in instance-id order (results come back in the given order) so that
        two PostgreSQL workers batching overlapping instances take the row locks in the
        same order and queue instead of deadlocking. On PostgreSQL the batch is first
        tried in pipeline mode (``storage.pipeline``); SQLite, and a PostgreSQL batch in
        which a step half-conflicts, run each plan inside a savepoint of its own.
        """
        if self.pg and plans:
            self.run(cur, "SAVEPOINT shenpi_batch", {})
            done = pipeline.run(self, cur, plans)
            if done is not None:
                self.run(cur, "RELEASE SAVEPOINT shenpi_batch", {})
                return done
            self.run(cur, "ROLLBACK TO SAVEPOINT shenpi_batch", {})
            self.run(cur, "RELEASE SAVEPOINT shenpi_batch", {})
        results: list[list[int] | Conflict] = [[] for _ in plans]
        for i in sorted(range(len(plans)), key=lambda i: plans[i].instance_id):
            self.run(cur, "SAVEPOINT shenpi_step", {})
            try:
                results[i] = self.execute(cur, plans[i])
            except Conflict as conflict:
                self.run(cur, "ROLLBACK TO SAVEPOINT shenpi_step", {})
                results[i] = conflict
            self.run(cur, "RELEASE SAVEPOINT shenpi_step", {})
        return results

    def link(
        self,
        rows: Sequence[AuditRow],
        tips: dict[str, tuple[str, int, int]],
    ) -> list[dict[str, Any]]:
        """Audit rows chained onto ``tips`` (chain -> last hash, entries, last seq), which
        move in place; the caller sets the seq once the rows are inserted."""
        kid, secret = self.keys.current, self.keys.signing
        out = []
        for row, doc in rows:
            key = doc["chain_key"]
            prev, entries, seq = tips[key]
            digest = link_hash(prev, doc, secret)
            tips[key] = (digest, entries + 1, seq)
            out.append(dict(row, prev_hash=prev, hash=digest, key_id=kid))
        return out

    def anchors(self, tips: Mapping[str, tuple[str, int, int]]) -> list[dict[str, Any]]:
        """The anchor rows of the chains in ``tips``, each with its MAC."""
        kid, secret = self.keys.current, self.keys.signing
        return [
            {
                "chain_key": key,
                "last_seq": seq,
                "last_hash": last,
                "entries": entries,
                "key_id": kid,
                "mac": anchor_mac(key, seq, last, entries, secret),
            }
            for key, (last, entries, seq) in sorted(tips.items())
        ]

    def append_audit(self, cur: Any, rows: Sequence[AuditRow]) -> list[int]:
        """Link each entry to the tip of its chain and insert it; returns the seqs.

        The tip comes from the chain's anchor, not from the newest entry, and the anchor
        moves in the same transaction: had someone removed the newest entries, the next
        one would not link to what is left, so the removal stays visible.
        """
        if not rows:
            return []
        keys = sorted({doc["chain_key"] for _, doc in rows})
        if self.pg:
            # The tip must not move between reading it and appending to it. SQLite's
            # BEGIN IMMEDIATE already excludes other writers; PostgreSQL needs a lock, per
            # chain so unrelated instances proceed in parallel. Sorted: no deadlocks.
            for key in sorted({lock_key(k) for k in keys}):
                self.run(cur, self.ADVISORY_LOCK, {"key": key})
        tips: dict[str, tuple[str, int, int]] = {}  # chain -> last hash, entries, last seq
        for key in keys:
            found = self.run(cur, self.CHAIN_HEAD, {"chain_key": key}).fetchone()
            tips[key] = (found[0], found[1], 0) if found else (GENESIS, 0, 0)
        seqs = []
        for params in self.link(rows, tips):
            self.run(cur, self.INSERT_AUDIT, params)
            seq = cur.fetchone()[0] if self.pg else cur.lastrowid
            last, entries, _ = tips[params["chain_key"]]
            tips[params["chain_key"]] = (last, entries, seq)
            seqs.append(seq)
        self.many(cur, self.UPSERT_CHAIN, self.anchors(tips))
        return seqs

    def load_snapshot(self, cur: Any, instance_id: str) -> Snapshot | None:
        """The instance with its open tasks (None if there is no such instance)."""
        rows = self.run(cur, self.SNAPSHOT, {"id": instance_id}).fetchall()
        if not rows:
            return None
        n = len(self.instance_cols)
        open_tasks = [self._task(r[n:]) for r in rows if r[n] is not None]
        return self._snapshot(rows[0][:n], open_tasks)

    def load_snapshots(self, cur: Any, instance_ids: Sequence[str]) -> dict[str, Snapshot]:
        """Many instances with their open tasks in two statements (a page of due timers):
        one round trip per timer to load its instance was most of a tick's time on a busy
        PostgreSQL server. Ids that name nothing are left out."""
        ids = sorted(set(instance_ids))
        if not ids:
            return {}
        keys = {f"id{i}": v for i, v in enumerate(ids)}
        listed = ", ".join(f":{k}" for k in keys)
        rows = self.run(cur, self.sql(f"{self.INSTANCES_IN} ({listed})"), keys).fetchall()
        open_tasks: dict[str, list[TaskRecord]] = {}
        tasks_sql = self.sql(f"{self.OPEN_TASKS_IN} ({listed}) {self.OPEN_TASKS_ORDER}")
        for row in self.run(cur, tasks_sql, keys):
            task = self._task(row)
            open_tasks.setdefault(task.instance_id, []).append(task)
        snaps = (self._snapshot(r, open_tasks.get(r[0], [])) for r in rows)
        return {snap.id: snap for snap in snaps}

    def get_task(self, cur: Any, task_id: str) -> TaskRecord | None:
        row = self.run(cur, self.TASK, {"id": task_id}).fetchone()
        return self._task(row) if row is not None else None

    def _task(self, row: Sequence[Any]) -> TaskRecord:
        return task_record(dict(zip(self.task_cols, row, strict=True)))

    def _snapshot(self, row: Sequence[Any], open_tasks: Sequence[TaskRecord]) -> Snapshot:
        snap = snapshot_record(dict(zip(self.instance_cols, row, strict=True)), open_tasks)
        if len(self._before) >= _BEFORE_MAX:
            self._before.clear()  # steps planned from rows read long ago write both
        self._before[snap.id, snap.row_version] = (snap.state, snap.status)
        return snap
