"""The statements every action runs, executed on the DBAPI cursor.

``Store.apply`` and the snapshot/task reads around it are the whole cost of an action.
Through SQLAlchemy's Connection each statement costs tens of microseconds of Python (type
processors, result set-up, events); on the DBAPI cursor about one, and on SQLite the
write lock is held for every microsecond of it. So these few statements are plain SQL,
still generated from ``storage.tables``, run on a connection from the engine's pool in a
transaction begun here (see ``Hot.transaction``). Values are converted exactly as the
SQLAlchemy types would (see ``UTCDateTime``), so rows written here and through Core are
indistinguishable; the tests run both dialects. Everything that does not need the
database is prepared before the transaction starts, so the lock covers only the
statements themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from engine.errors import Conflict
from engine.records import AuditRecord, Notice, Outcome, Signoff, Snapshot, TaskRecord
from storage.auditkeys import AuditKeys
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


def chain_key(record: AuditRecord) -> str:
    """Chains are per instance so PostgreSQL writers on different instances never queue."""
    return record.instance_id if record.instance_id is not None else f"process:{record.process}"


def iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _encode(text: str) -> bytes:
    """UTF-8, but a lone surrogate (invalid Unicode) is encoded instead of raising.

    Valid text gives exactly the bytes of plain UTF-8, so hashes of existing entries
    do not change; invalid text still gets a deterministic hash instead of a crash.
    """
    return text.encode("utf-8", "surrogatepass")


def chain_digest(prev_hash: str, doc: Mapping[str, Any], key: bytes | None) -> str:
    """sha256(prev_hash + canonical JSON), or HMAC-SHA256 of the same bytes with ``key``."""
    message = _encode(prev_hash + _canonical(doc))
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.digest(key, message, "sha256").hex()


def audit_hash(row: Mapping[Any, Any], key: bytes | None = None) -> str:
    """The hash of an entry: every field but seq, hash and key_id, linked to prev_hash.

    Canonical means sorted keys, no spaces, UTC datetimes with microseconds: the same
    bytes whether the row comes from SQLite or PostgreSQL (JSONB reorders keys).
    """
    doc = {
        name: iso_utc(v) if isinstance(v := row[name], datetime) else v for name in HASHED_FIELDS
    }
    return chain_digest(row["prev_hash"], doc, key)


def anchor_mac(chain: str, last_seq: int, last_hash: str, entries: int, key: bytes | None) -> str:
    """Signs a chain's anchor row, so that with a key it cannot be rewound by hand."""
    doc = {"chain_key": chain, "last_seq": last_seq, "last_hash": last_hash, "entries": entries}
    return chain_digest("anchor", doc, key)


def head_digest(tips: Mapping[str, tuple[int, str]]) -> str:
    """One digest over every chain's (key, last seq, last hash): what an auditor keeps."""
    digest = hashlib.sha256(b"shenpi-audit-head/1\n")
    for key in sorted(tips):
        seq, last = tips[key]
        digest.update(_encode(_canonical([key, seq, last]) + "\n"))
    return digest.hexdigest()


def lock_key(key: str) -> int:
    """A signed 64-bit advisory lock id for a chain key (computed here so it sorts here)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big", signed=True)


def aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return value


# ---------------------------------------------------------------------- a prepared step


@dataclass
class Plan:
    """One outcome turned into statement parameters, ready before the transaction."""

    instance_id: str
    insert: bool
    instance: dict[str, Any]
    fired: dict[str, Any] | None = None
    opened: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    roles_cleared: list[dict[str, Any]] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)
    audit: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)  # row, doc
    cancel_ids: list[dict[str, Any]] = field(default_factory=list)
    cancel_states: list[dict[str, Any]] = field(default_factory=list)
    timers: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)


class Hot:
    """Hot-path SQL for one dialect, with the value conversions its driver needs."""

    def __init__(self, engine: sa.Engine, keys: AuditKeys | None = None) -> None:
        self.engine = engine
        self.keys = keys if keys is not None else AuditKeys()
        dialect = engine.dialect
        self.pg = dialect.name == "postgresql"
        self.dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        self._quote = dialect.identifier_preparer.quote
        if self.pg:
            from psycopg.types.json import Jsonb

            self.json_in: Any = Jsonb
        else:
            self.json_in = json.dumps

        self.instance_cols = [c.name for c in instances.c]
        self.task_cols = [c.name for c in tasks.c]
        self.INSERT_INSTANCE = self._insert(
            instances, self.instance_cols, " ON CONFLICT (id) DO NOTHING"
        )
        changing = ("state", "status", "outcome", "variables", "task_seq", "approvers", "meta")
        self.UPDATE_INSTANCE = self._sql(
            f"UPDATE instances SET {self._sets(instances, *changing, 'updated_at')}, "
            "row_version = row_version + 1 WHERE id = :id AND row_version = :expected"
        )
        self.FIRE_TIMER = self._sql(
            "UPDATE timers SET status = 'fired', fired_at = :at "
            "WHERE id = :id AND status = 'pending'"
        )
        self.CLAIM_SCHEDULE = self._insert(
            schedule_runs,
            ["schedule", "planned_at", "started_at", "instance_id"],
            " ON CONFLICT (schedule, planned_at) DO NOTHING",
        )
        self.INSERT_TASK = self._insert(tasks, self.task_cols)
        self.UPDATE_TASK = self._sql(
            f"UPDATE tasks SET {self._sets(tasks, *self.task_cols[1:])} WHERE id = :id"
        )
        self.DELETE_TASK_ROLES = self._sql("DELETE FROM task_roles WHERE task_id = :task_id")
        self.INSERT_TASK_ROLE = self._insert(task_roles, ["task_id", "role", "due_at"])
        self.CHAIN_HEAD = self._sql(
            "SELECT last_hash, entries FROM audit_chains WHERE chain_key = :chain_key"
        )
        chain_cols = [c.name for c in audit_chains.c]
        self.UPSERT_CHAIN = self._insert(
            audit_chains,
            chain_cols,
            " ON CONFLICT (chain_key) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in chain_cols[1:]),
        )
        audit_cols = [c.name for c in audit_log.c if c.name != "seq"]
        self.INSERT_AUDIT = self._insert(audit_log, audit_cols, " RETURNING seq" if self.pg else "")
        self.CANCEL_TIMER = self._sql(
            "UPDATE timers SET status = 'cancelled' WHERE id = :id AND status = 'pending'"
        )
        self.CANCEL_STATE = self._sql(
            "UPDATE timers SET status = 'cancelled' WHERE instance_id = :instance_id "
            "AND state = :state AND status = 'pending'"
        )
        self.INSERT_TIMER = self._insert(
            timers, [c.name for c in timers.c], " ON CONFLICT (id) DO NOTHING"
        )
        self.INSERT_OUTBOX = self._insert(outbox, [c.name for c in outbox.c if c.name != "id"])
        self.ADVISORY_LOCK = self._sql("SELECT pg_advisory_xact_lock(:key)")
        # PostgreSQL batches (``_pipelined``): one statement for all plans of a batch
        self.INSERT_INSTANCE_RET = f"{self.INSERT_INSTANCE} RETURNING id"
        self.UPDATE_INSTANCE_RET = f"{self.UPDATE_INSTANCE} RETURNING id"
        self.FIRE_TIMER_RET = f"{self.FIRE_TIMER} RETURNING id"
        self.ADVISORY_LOCKS = self._sql(
            "SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"
        )
        self.CHAIN_HEADS = self._sql(
            "SELECT chain_key, last_hash, entries FROM audit_chains "
            "WHERE chain_key = ANY(CAST(:keys AS text[]))"
        )
        self.INSTANCE = self._sql(
            f"SELECT {self._names(self.instance_cols)} FROM instances WHERE id = :id"
        )
        task_select = f"SELECT {self._names(self.task_cols)} FROM tasks"
        # Without statistics SQLite prefers the (status, due_at) index here, which means
        # scanning every open task of the installation; name the right one.
        by_instance = "" if self.pg else " INDEXED BY ix_tasks_instance_id_status"
        self.OPEN_TASKS = self._sql(
            f"{task_select}{by_instance} WHERE instance_id = :id AND status = 'open' "
            "ORDER BY created_at, length(id), id"
        )
        self.TASK = self._sql(f"{task_select} WHERE id = :id")
        # completed with a parenthesised list of ids by load_snapshots (a page at a time)
        assert self.instance_cols[0] == "id"
        self.INSTANCES_IN = f"SELECT {self._names(self.instance_cols)} FROM instances WHERE id IN"
        self.OPEN_TASKS_IN = f"{task_select}{by_instance} WHERE status = 'open' AND instance_id IN"
        self.OPEN_TASKS_ORDER = "ORDER BY instance_id, created_at, length(id), id"

    # ------------------------------------------------------------------ SQL text

    def _sql(self, text: str) -> str:
        """Write ``:name`` parameters; psycopg wants ``%(name)s`` (and literal % doubled)."""
        if not self.pg:
            return text
        return re.sub(r"(?<!:):(\w+)", r"%(\1)s", text.replace("%", "%%"))

    def _names(self, cols: Iterable[str]) -> str:
        return ", ".join(self._quote(c) for c in cols)

    def _sets(self, table: sa.Table, *cols: str) -> str:
        for c in cols:
            table.c[c]  # noqa: B018 - fail at start-up on a typo, not at the first step
        return ", ".join(f"{self._quote(c)} = :{c}" for c in cols)

    def _insert(self, table: sa.Table, cols: Sequence[str], tail: str = "") -> str:
        values = ", ".join(f":{c}" for c in cols)
        return self._sql(f"INSERT INTO {table.name} ({self._names(cols)}) VALUES ({values}){tail}")

    # ------------------------------------------------------------------ values

    def when(self, value: datetime | None) -> Any:
        """As ``UTCDateTime`` binds it: aware on PostgreSQL, naive-UTC text on SQLite."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: storage needs timezone-aware times")
        value = value.astimezone(UTC)
        if self.pg:
            return value
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")

    def when_out(self, value: str | datetime | None) -> datetime | None:
        if value is None:
            return None
        when = datetime.fromisoformat(value) if isinstance(value, str) else value
        if when.tzinfo is None:
            return when.replace(tzinfo=UTC)
        return when.astimezone(UTC)

    def json_out(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value

    # ------------------------------------------------------------------ rows

    def task_params(self, task: TaskRecord) -> dict[str, Any]:
        return {
            "id": task.id,
            "instance_id": task.instance_id,
            "process": task.process,
            "name": task.name,
            "state": task.state,
            "roles": self.json_in(list(task.roles)),
            "mode": task.mode,
            "actions": self.json_in(list(task.actions)),
            "status": task.status,
            "created_at": self.when(task.created_at),
            "due_at": self.when(task.due_at),
            "closed_at": self.when(task.closed_at),
            "decision": task.decision,
            "decided_by": task.decided_by,
            "signoffs": self.json_in([s.to_json() for s in task.signoffs]),
        }

    def task_out(self, row: Sequence[Any]) -> TaskRecord:
        r = dict(zip(self.task_cols, row, strict=True))
        return TaskRecord(
            id=r["id"],
            instance_id=r["instance_id"],
            process=r["process"],
            name=r["name"],
            state=r["state"],
            roles=tuple(self.json_out(r["roles"])),
            mode=r["mode"],
            actions=tuple(self.json_out(r["actions"])),
            status=r["status"],
            created_at=self.when_out(r["created_at"]),  # type: ignore[arg-type]
            due_at=self.when_out(r["due_at"]),
            closed_at=self.when_out(r["closed_at"]),
            decision=r["decision"],
            decided_by=r["decided_by"],
            signoffs=tuple(Signoff.from_json(s) for s in self.json_out(r["signoffs"])),
        )

    def snapshot_out(self, row: Sequence[Any], open_tasks: Sequence[TaskRecord]) -> Snapshot:
        r = dict(zip(self.instance_cols, row, strict=True))
        return Snapshot(
            id=r["id"],
            process=r["process"],
            version=r["version"],
            state=r["state"],
            status=r["status"],
            variables=self.json_out(r["variables"]),
            requester=r["requester"],
            created_at=self.when_out(r["created_at"]),  # type: ignore[arg-type]
            updated_at=self.when_out(r["updated_at"]),  # type: ignore[arg-type]
            row_version=r["row_version"],
            tasks=tuple(open_tasks),
            task_seq=r["task_seq"],
            approvers=tuple(self.json_out(r["approvers"])),
            outcome=r["outcome"],
            meta=self.json_out(r["meta"]),
        )

    def audit_rows(
        self, records: Sequence[AuditRecord], recorded_at: datetime
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Parameters and hash document per entry, all but the chain link."""
        recorded = self.when(recorded_at)
        recorded_iso = iso_utc(recorded_at)
        out = []
        for rec in records:
            aware(rec.at, "audit at")
            text = json.dumps(rec.data)
            data = json.loads(text)  # what storage will give back, so the hash matches it
            key = chain_key(rec)
            doc = {
                "at": iso_utc(rec.at),
                "recorded_at": recorded_iso,
                "actor": rec.actor,
                "on_behalf_of": rec.on_behalf_of,
                "process": rec.process,
                "instance_id": rec.instance_id,
                "task_id": rec.task_id,
                "action": rec.action,
                "from_state": rec.from_state,
                "to_state": rec.to_state,
                "data": data,
                "chain_key": key,
            }
            row = dict(
                doc,
                at=self.when(rec.at),
                recorded_at=recorded,
                data=text if not self.pg else self.json_in(data),
            )
            out.append((row, doc))
        return out

    def plan(self, outcome: Outcome, recorded_at: datetime, fired_timer: str | None) -> Plan:
        snap = outcome.snapshot
        recorded = self.when(aware(recorded_at, "recorded_at"))
        common = {
            "state": snap.state,
            "status": snap.status,
            "outcome": snap.outcome,
            "variables": self.json_in(snap.variables),
            "task_seq": snap.task_seq,
            "approvers": self.json_in(list(snap.approvers)),
            "meta": self.json_in(snap.meta),
            "updated_at": self.when(snap.updated_at),
        }
        if outcome.expected_row_version is None:
            instance = {
                **common,
                "id": snap.id,
                "process": snap.process,
                "version": snap.version,
                "requester": snap.requester,
                "created_at": self.when(snap.created_at),
                "row_version": snap.row_version,
            }
        else:
            instance = {**common, "id": snap.id, "expected": outcome.expected_row_version}
        plan = Plan(snap.id, outcome.expected_row_version is None, instance)
        if fired_timer is not None:
            plan.fired = {"id": fired_timer, "at": recorded}
        plan.opened = [self.task_params(t) for t in outcome.opened]
        plan.changed = [self.task_params(t) for t in outcome.changed]
        plan.roles_cleared = [{"task_id": t.id} for t in outcome.changed]
        pending = {
            (t.id, role): t.due_at
            for t in (*outcome.opened, *outcome.changed)
            for role in t.pending_roles
        }
        plan.roles = [
            {"task_id": i, "role": r, "due_at": self.when(due)}
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
                "due_at": self.when(t.due_at),
                "status": "pending",
                "data": self.json_in(t.data),
                "created_at": recorded,
                "fired_at": None,
            }
            for t in outcome.timers_set
        ]
        plan.notices = self.notice_rows(outcome.notices, recorded)
        return plan

    def notice_rows(self, notices: Sequence[Notice], recorded: Any) -> list[dict[str, Any]]:
        """Outbox rows for ``notices``, pending, stamped ``recorded`` (already converted)."""
        return [
            {
                "created_at": recorded,
                "event": n.event,
                "recipients": self.json_in(list(n.recipients)),
                "instance_id": n.instance_id,
                "task_id": n.task_id,
                "data": self.json_in(n.data),
                "status": "pending",
                "attempts": 0,
                "sent_at": None,
                "last_error": None,
                "claimed_at": None,
            }
            for n in notices
        ]

    # ------------------------------------------------------------------ execution

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Any]:
        """A DBAPI cursor in a transaction on a pooled connection, committed on success.

        This skips SQLAlchemy's Connection (and its "begin" event), so the SQLite BEGIN
        flavour is issued here: IMMEDIATE for writes, so writers queue on busy_timeout
        instead of failing on a lock upgrade; DEFERRED for reads, which then never wait
        (WAL). psycopg begins implicitly. A connection that cannot even roll back is
        invalidated rather than returned to the pool.
        """
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            try:
                if not self.pg:
                    self.run(cur, "BEGIN IMMEDIATE" if write else "BEGIN DEFERRED", {})
                yield cur
                raw.commit()
            except BaseException:
                try:
                    raw.rollback()
                except Exception:
                    raw.invalidate()
                raise
            finally:
                cur.close()
        finally:
            raw.close()

    def run(self, cur: Any, sql: str, params: Mapping[str, Any]) -> Any:
        try:
            cur.execute(sql, params)
        except self.dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(sql, params, exc, self.dbapi_error) from exc
        return cur

    def many(self, cur: Any, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        try:
            if len(rows) == 1:
                cur.execute(sql, rows[0])
            else:
                cur.executemany(sql, rows)
        except self.dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(sql, rows, exc, self.dbapi_error) from exc

    def execute(self, cur: Any, plan: Plan) -> list[int]:
        """Run a plan inside the caller's transaction; raises Conflict on a lost race.

        The instance row goes first: on PostgreSQL its row lock orders concurrent steps
        on one instance, and a loser learns it before doing any more work.
        """
        if plan.insert:
            if self.run(cur, self.INSERT_INSTANCE, plan.instance).rowcount != 1:
                raise Conflict(plan.instance_id, "an instance with this id already exists")
        elif self.run(cur, self.UPDATE_INSTANCE, plan.instance).rowcount != 1:
            raise Conflict(plan.instance_id)
        fired = plan.fired
        if fired is not None and self.run(cur, self.FIRE_TIMER, fired).rowcount != 1:
            raise Conflict(
                plan.instance_id, f"timer {fired['id']} has already fired or was cancelled"
            )
        self.many(cur, self.INSERT_TASK, plan.opened)
        self.many(cur, self.UPDATE_TASK, plan.changed)
        self.many(cur, self.DELETE_TASK_ROLES, plan.roles_cleared)
        self.many(cur, self.INSERT_TASK_ROLE, plan.roles)
        seqs = self.append_audit(cur, plan.audit)
        self.many(cur, self.CANCEL_TIMER, plan.cancel_ids)
        self.many(cur, self.CANCEL_STATE, plan.cancel_states)
        self.many(cur, self.INSERT_TIMER, plan.timers)
        self.many(cur, self.INSERT_OUTBOX, plan.notices)
        return seqs

    def execute_batch(self, cur: Any, plans: Sequence[Plan]) -> list[list[int] | Conflict]:
        """Several plans in one transaction, each all-or-nothing on its own.

        Plans run in instance-id order (results come back in the given order) so that
        two PostgreSQL workers batching overlapping instances take the row locks in the
        same order and queue instead of deadlocking. On PostgreSQL the batch is first
        tried in pipeline mode (see ``_pipelined``); SQLite, and a PostgreSQL batch in
        which a step half-conflicts, run each plan inside a savepoint of its own.
        """
        if self.pg and plans:
            self.run(cur, "SAVEPOINT shenpi_batch", {})
            done = self._pipelined(cur, plans)
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

    def _pipelined(self, cur: Any, plans: Sequence[Plan]) -> list[list[int] | Conflict] | None:
        """A PostgreSQL batch in a dozen statements instead of about ten per plan.

        On a busy server every round trip costs about a millisecond, so a tick's backlog
        run statement by statement fired under a hundred timers a second. Here each kind
        of statement runs once for all plans (``executemany``, which psycopg pipelines):
        first the guarded instance writes in instance-id order (row locks, as in
        ``execute``), the timer claims, then the audit chain locks of the instances whose
        rows are now held, and their chain tips; then every remaining statement of the
        plans that won. A plan whose instance write and timer claim both found nothing
        lost its race and wrote nothing; one where only one of them did (a timer
        cancelled without touching its instance) cannot be undone here, so None tells
        the caller to roll back to before the batch and run it plan by plan.
        """
        order = sorted(range(len(plans)), key=lambda i: plans[i].instance_id)
        results: list[list[int] | Conflict] = [[] for _ in plans]
        try:
            wrote: dict[int, bool] = {}
            for insert, sql in (
                (True, self.INSERT_INSTANCE_RET),
                (False, self.UPDATE_INSTANCE_RET),
            ):
                idxs = [i for i in order if plans[i].insert is insert]
                found = self._each(cur, sql, [plans[i].instance for i in idxs])
                wrote.update(zip(idxs, found, strict=True))
            timed = [i for i in order if plans[i].fired is not None]
            claims = [plans[i].fired or {} for i in timed]
            fired = dict(zip(timed, self._each(cur, self.FIRE_TIMER_RET, claims), strict=True))
            won: list[int] = []
            for i in order:
                if i in fired and fired[i] != wrote[i]:
                    return None
                if wrote[i]:
                    won.append(i)
                else:
                    results[i] = Conflict(
                        plans[i].instance_id,
                        "an instance with this id already exists" if plans[i].insert else "",
                    )
            keys = sorted({doc["chain_key"] for i in won for _, doc in plans[i].audit})
            tips: dict[str, tuple[str, int, int]] = {}
            if keys:
                locks = sorted({lock_key(k) for k in keys})
                cur.execute(self.ADVISORY_LOCKS, {"keys": locks})
                cur.execute(self.CHAIN_HEADS, {"keys": keys})
                found = {key: (last, entries) for key, last, entries in cur.fetchall()}
                tips = {key: (*found.get(key, (GENESIS, 0)), 0) for key in keys}
            audit: list[dict[str, Any]] = []
            owners: list[int] = []
            for i in won:
                linked = self._link(plans[i].audit, tips)
                audit.extend(linked)
                owners.extend([i] * len(linked))
            seqs: dict[int, list[int]] = {i: [] for i in won}
            for statement, rows in self._stage_two(plans, won):
                if statement == self.INSERT_AUDIT:
                    returned = self._each(cur, self.INSERT_AUDIT, audit, value=True)
                    for i, row, seq in zip(owners, audit, returned, strict=True):
                        seqs[i].append(seq)
                        last, entries, _ = tips[row["chain_key"]]
                        tips[row["chain_key"]] = (last, entries, seq)
                    if tips:
                        cur.executemany(self.UPSERT_CHAIN, self._anchors(tips))
                elif rows:
                    cur.executemany(statement, rows)
            for i, mine in seqs.items():
                results[i] = mine
        except self.dbapi_error as exc:
            raise sa.exc.DBAPIError.instance("batch", {}, exc, self.dbapi_error) from exc
        return results

    @staticmethod
    def _each(
        cur: Any, sql: str, rows: Sequence[Mapping[str, Any]], value: bool = False
    ) -> list[Any]:
        """``executemany`` of a RETURNING statement: per row, whether it returned a row
        (or, with ``value``, the first column it returned)."""
        if not rows:
            return []
        cur.executemany(sql, rows, returning=True)
        out = []
        while True:
            row = cur.fetchone()
            out.append(row[0] if value else row is not None)
            if not cur.nextset():
                return out

    def _stage_two(
        self, plans: Sequence[Plan], won: Sequence[int]
    ) -> list[tuple[str, list[dict[str, Any]]]]:
        """The statements after the claim, in ``execute``'s order, rows of all winners
        (audit rows are chained and sent by the caller)."""

        def rows(attr: str) -> list[dict[str, Any]]:
            return [row for i in won for row in getattr(plans[i], attr)]

        return [
            (self.INSERT_TASK, rows("opened")),
            (self.UPDATE_TASK, rows("changed")),
            (self.DELETE_TASK_ROLES, rows("roles_cleared")),
            (self.INSERT_TASK_ROLE, rows("roles")),
            (self.INSERT_AUDIT, []),
            (self.CANCEL_TIMER, rows("cancel_ids")),
            (self.CANCEL_STATE, rows("cancel_states")),
            (self.INSERT_TIMER, rows("timers")),
            (self.INSERT_OUTBOX, rows("notices")),
        ]

    def _link(
        self,
        rows: Sequence[tuple[dict[str, Any], dict[str, Any]]],
        tips: dict[str, tuple[str, int, int]],
    ) -> list[dict[str, Any]]:
        """Audit rows chained onto ``tips`` (chain -> last hash, entries, last seq), which
        move in place; the caller sets the seq once the rows are inserted."""
        kid, secret = self.keys.current, self.keys.signing
        out = []
        for row, doc in rows:
            key = doc["chain_key"]
            prev, entries, seq = tips[key]
            digest = chain_digest(prev, dict(doc, prev_hash=prev), secret)
            tips[key] = (digest, entries + 1, seq)
            out.append(dict(row, prev_hash=prev, hash=digest, key_id=kid))
        return out

    def _anchors(self, tips: Mapping[str, tuple[str, int, int]]) -> list[dict[str, Any]]:
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

    def append_audit(
        self, cur: Any, rows: Sequence[tuple[dict[str, Any], dict[str, Any]]]
    ) -> list[int]:
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
        for params in self._link(rows, tips):
            self.run(cur, self.INSERT_AUDIT, params)
            seq = cur.fetchone()[0] if self.pg else cur.lastrowid
            last, entries, _ = tips[params["chain_key"]]
            tips[params["chain_key"]] = (last, entries, seq)
            seqs.append(seq)
        self.many(cur, self.UPSERT_CHAIN, self._anchors(tips))
        return seqs

    def load_snapshot(self, cur: Any, instance_id: str) -> Snapshot | None:
        row = self.run(cur, self.INSTANCE, {"id": instance_id}).fetchone()
        if row is None:
            return None
        open_tasks = [self.task_out(t) for t in self.run(cur, self.OPEN_TASKS, {"id": instance_id})]
        return self.snapshot_out(row, open_tasks)

    def load_snapshots(self, cur: Any, instance_ids: Sequence[str]) -> dict[str, Snapshot]:
        """Many instances with their open tasks in two statements (a page of due timers):
        one round trip per timer to load its instance was most of a tick's time on a busy
        PostgreSQL server. Ids that name nothing are left out."""
        ids = sorted(set(instance_ids))
        if not ids:
            return {}
        keys = {f"id{i}": v for i, v in enumerate(ids)}
        listed = ", ".join(f":{k}" for k in keys)
        rows = self.run(cur, self._sql(f"{self.INSTANCES_IN} ({listed})"), keys).fetchall()
        open_tasks: dict[str, list[TaskRecord]] = {}
        tasks_sql = self._sql(f"{self.OPEN_TASKS_IN} ({listed}) {self.OPEN_TASKS_ORDER}")
        for row in self.run(cur, tasks_sql, keys):
            task = self.task_out(row)
            open_tasks.setdefault(task.instance_id, []).append(task)
        snaps = (self.snapshot_out(r, open_tasks.get(r[0], [])) for r in rows)
        return {snap.id: snap for snap in snaps}

    def get_task(self, cur: Any, task_id: str) -> TaskRecord | None:
        row = self.run(cur, self.TASK, {"id": task_id}).fetchone()
        return self.task_out(row) if row is not None else None
