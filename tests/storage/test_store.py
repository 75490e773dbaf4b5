"""Store against real SQLite and PostgreSQL: atomicity, locking, audit chain, timers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from engine.errors import Conflict, NotFound
from engine.records import (
    AuditRecord,
    Notice,
    Outcome,
    Signoff,
    Snapshot,
    TaskRecord,
    TimerRecord,
)
from storage import tables
from storage.db import HEAD_REVISION, MIGRATIONS, current_revision, migrate, open_engine
from storage.store import Store

T0 = datetime(2024, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()


# ---------------------------------------------------------------------- builders


def snapshot(iid: str = "i1", **kw: Any) -> Snapshot:
    base: dict[str, Any] = {
        "id": iid,
        "process": "leave",
        "version": 1,
        "state": "submitted",
        "status": "active",
        "variables": {"days": 3, "amount": "12.50", "note": "年假"},
        "requester": "alice",
        "created_at": T0,
        "updated_at": T0,
    }
    base.update(kw)
    return Snapshot(**base)


def task(iid: str = "i1", n: int = 1, **kw: Any) -> TaskRecord:
    base: dict[str, Any] = {
        "id": f"{iid}-{n}",
        "instance_id": iid,
        "process": "leave",
        "name": "review",
        "state": "review",
        "roles": ("manager",),
        "mode": "any",
        "actions": ("approve", "reject"),
        "status": "open",
        "created_at": T0,
    }
    base.update(kw)
    return TaskRecord(**base)


def audit(iid: str | None = "i1", action: str = "start", **kw: Any) -> AuditRecord:
    base: dict[str, Any] = {
        "at": T0,
        "actor": "alice",
        "action": action,
        "process": "leave",
        "instance_id": iid,
        "from_state": None,
        "to_state": "review",
        "data": {"k": [1, 2], "z": "值", "a": {"b": None}},
    }
    base.update(kw)
    return AuditRecord(**base)


def start(iid: str = "i1", *, tasks: tuple[TaskRecord, ...] | None = None, **kw: Any) -> Outcome:
    opened = tasks if tasks is not None else (task(iid),)
    fields: dict[str, Any] = {
        "snapshot": snapshot(iid, state="review", task_seq=len(opened), tasks=opened),
        "expected_row_version": None,
        "opened": opened,
        "audit": (audit(iid),),
        "notices": (Notice("task_assigned", ("role:manager",), iid, f"{iid}-1", {"x": 1}),),
    }
    fields.update(kw)
    return Outcome(**fields)


def decide(
    snap: Snapshot, t: TaskRecord, action: str = "approve", user: str = "bob", **kw: Any
) -> Outcome:
    """The outcome of ``user`` closing ``t`` with ``action``, as the engine would build it."""
    at = T0 + timedelta(hours=1)
    closed = replace(
        t,
        status="done",
        closed_at=at,
        decision=action,
        decided_by=user,
        signoffs=(*t.signoffs, Signoff(user, t.roles[0], action, at)),
    )
    after = replace(
        snap,
        state="approved",
        status="completed",
        outcome="approved",
        updated_at=at,
        approvers=(*snap.approvers, user),
        tasks=(),
    )
    fields: dict[str, Any] = {
        "snapshot": after,
        "expected_row_version": snap.row_version,
        "changed": (closed,),
        "audit": (
            audit(snap.id, action, actor=user, at=at, from_state="review", to_state="approved"),
        ),
    }
    fields.update(kw)
    return Outcome(**fields)


def count(store: Store, table: sa.Table, *where: Any) -> int:
    with store.engine.connect() as conn:
        stmt = sa.select(sa.func.count()).select_from(table).where(*where)
        return int(conn.execute(stmt).scalar_one())


def pending_notices(store: Store) -> list[dict[str, Any]]:
    """The outbox rows not yet claimed by a sender, oldest first."""
    stmt = sa.select(tables.outbox).where(tables.outbox.c.status == "pending")
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt.order_by(tables.outbox.c.id)).mappings()]


def role_rows(store: Store) -> set[tuple[str, str]]:
    with store.engine.connect() as conn:
        return {(r.task_id, r.role) for r in conn.execute(sa.select(tables.task_roles))}


# ---------------------------------------------------------------------- migrations


def test_migration_applied_on_first_open_and_idempotent(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        assert current_revision(engine) is None
        assert migrate(engine) is True
        assert current_revision(engine) == HEAD_REVISION
        assert migrate(engine) is False
        names = set(sa.inspect(engine).get_table_names())
        assert {t.name for t in tables.metadata.sorted_tables} <= names
    finally:
        engine.dispose()
    with Store.open(db_url) as s:  # a second open finds the schema current
        assert current_revision(s.engine) == HEAD_REVISION
        assert s.list_definitions() == []


def test_head_revision_constant_matches_scripts() -> None:
    from alembic.script import ScriptDirectory

    from storage.db import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_heads() == [HEAD_REVISION], "update storage.db.HEAD_REVISION"
    assert (MIGRATIONS / "env.py").is_file()


def test_migrations_match_tables_module(db_url: str) -> None:
    """The hand-written revision creates exactly what storage.tables describes."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with Store.open(db_url) as s, s.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, tables.metadata)
    assert diff == []


def test_sqlite_pragmas(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_sqlite_write_lock_taken_at_begin(sqlite_url: str) -> None:
    """BEGIN IMMEDIATE: a second writer cannot even start while the first is open,
    while readers (deferred BEGIN, WAL) carry on."""
    import sqlite3

    with Store.open(sqlite_url) as s:
        raw = sqlite3.connect(sa.make_url(sqlite_url).database or "", timeout=0)
        raw.isolation_level = None
        try:
            with s.engine.begin():
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    raw.execute("BEGIN IMMEDIATE")
                assert s.instance_page().items == []
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("ROLLBACK")
        finally:
            raw.close()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("data/shenpi.db", "sqlite:///data/shenpi.db"),
    ],
)
def test_url_spellings(given: str, expected: str) -> None:
    from storage.db import normalize_url

    assert normalize_url(given) == expected


# ---------------------------------------------------------------------- apply


def test_apply_insert_then_update(store: Store) -> None:
    t = task(due_at=T0 + timedelta(days=2))
    seqs = store.apply(start(tasks=(t,)), T0)
    assert len(seqs) == 1
    snap = store.load_snapshot("i1")
    assert snap.row_version == 0
    assert snap.state == "review" and snap.status == "active" and snap.task_seq == 1
    assert snap.variables == {"days": 3, "amount": "12.50", "note": "年假"}
    assert snap.tasks == (t,)
    assert store.get_task("i1-1") == t

    seqs2 = store.apply(decide(snap, t), T0 + timedelta(hours=1))
    assert seqs2[0] > seqs[0]
    after = store.load_snapshot("i1")
    assert after.row_version == 1
    assert (after.state, after.status, after.outcome) == ("approved", "completed", "approved")
    assert after.approvers == ("bob",)
    assert after.tasks == ()
    closed = store.get_task("i1-1")
    assert closed.status == "done" and closed.decided_by == "bob"
    assert closed.signoffs[0].user == "bob" and closed.signoffs[0].at.tzinfo is not None
    assert [x.id for x in store.task_page(instance_id="i1", status=None).items] == ["i1-1"]
    assert role_rows(store) == set()
    notices = pending_notices(store)
    assert [(n["event"], n["recipients"], n["data"]) for n in notices] == [
        ("task_assigned", ["role:manager"], {"x": 1})
    ]


def test_updates_keep_the_listing_indexes_right(db_url: str) -> None:
    """An UPDATE names state and status only when they change from the row read (or from
    nothing known): each way, the listings by state and status find the row as it is."""
    with Store.open(db_url) as s:
        s.apply(start("a"), T0)
        s.apply(start("b"), T0)
        for iid, state, status in (("a", "review", "completed"), ("b", "done", "active")):
            snap = s.load_snapshot(iid)
            after = replace(snap, state=state, status=status, tasks=())
            s.apply(Outcome(after, snap.row_version), T0)
        with Store.open(db_url) as other:  # nothing read first: both columns are written
            snap = other.load_snapshot("b")
            s.apply(Outcome(replace(snap, state="closed", tasks=()), snap.row_version), T0)
        assert [i.id for i in s.instance_page(status="completed").items] == ["a"]
        assert [i.id for i in s.instance_page(state="review").items] == ["a"]
        assert [i.id for i in s.instance_page(state="closed", status="active").items] == ["b"]
        assert s.instance_page(state="done").items == []
        assert s.instance_page(process="leave", state="review", status="active").items == []


def test_optimistic_conflict_changes_nothing(store: Store) -> None:
    t = task()
    store.apply(start(tasks=(t,)), T0)
    snap = store.load_snapshot("i1")
    first = decide(snap, t, "approve", "bob")
    second = decide(
        snap,
        t,
        "reject",
        "carol",
        opened=(task(n=2, name="rework", roles=("clerk",)),),
        timers_set=(TimerRecord("tm-2", "i1", "deadline", T0, "rework"),),
        notices=(Notice("done", ("user:alice",), "i1"),),
    )
    store.apply(first, T0)
    audit_before = count(store, tables.audit_log)
    outbox_before = count(store, tables.outbox)
    with pytest.raises(Conflict, match="instance i1 was changed by someone else"):
        store.apply(second, T0)
    assert count(store, tables.audit_log) == audit_before
    assert count(store, tables.outbox) == outbox_before
    assert count(store, tables.tasks) == 1
    assert count(store, tables.timers) == 0
    assert store.get_task("i1-1").decided_by == "bob"
    assert store.load_snapshot("i1").row_version == 1


def test_inserting_an_existing_instance_is_a_conflict(store: Store) -> None:
    store.apply(start(), T0)
    with pytest.raises(Conflict, match="already exists"):
        store.apply(start(tasks=(task(n=7),)), T0)
    assert count(store, tables.tasks) == 1
    assert count(store, tables.audit_log) == 1


def test_failure_midway_rolls_everything_back(store: Store) -> None:
    # The last write (the outbox) cannot be serialized: everything before it must go too.
    bad = start(
        timers_set=(TimerRecord("tm-1", "i1", "deadline", T0, "review"),),
        notices=(Notice("task_assigned", ("role:manager",), "i1", data={"x": object()}),),
    )
    # SQLAlchemy wraps the TypeError on SQLite; psycopg serializes JSONB itself and doesn't.
    with pytest.raises((TypeError, sa.exc.StatementError), match="not JSON serializable"):
        store.apply(bad, T0)
    with pytest.raises(NotFound, match="unknown instance 'i1'"):
        store.load_snapshot("i1")
    for table in (tables.tasks, tables.task_roles, tables.audit_log, tables.timers, tables.outbox):
        assert count(store, table) == 0, table.name
    # A database-side failure (a timer for an instance that does not exist) as well.
    store.apply(start(), T0)
    snap = store.load_snapshot("i1")
    orphan = decide(
        snap, snap.tasks[0], timers_set=(TimerRecord("tm-x", "nope", "deadline", T0, "x"),)
    )
    with pytest.raises(sa.exc.IntegrityError):
        store.apply(orphan, T0)
    assert store.load_snapshot("i1").row_version == 0
    assert store.get_task("i1-1").status == "open"
    assert count(store, tables.audit_log) == 1
    assert store.check_audit().problems == []


def test_task_roles_follow_pending_roles(store: Store) -> None:
    seq = task(n=1, roles=("manager", "director", "cfo"), mode="sequence")
    all_ = task(n=2, roles=("legal", "hr"), mode="all")
    any_ = task(n=3, roles=("clerk", "manager"), mode="any")
    store.apply(start(tasks=(seq, all_, any_)), T0)
    assert role_rows(store) == {
        ("i1-1", "manager"),
        ("i1-2", "legal"),
        ("i1-2", "hr"),
        ("i1-3", "clerk"),
        ("i1-3", "manager"),
    }
    assert [t.id for t in store.task_page(roles={"manager"}).items] == ["i1-1", "i1-3"]
    assert [t.id for t in store.task_page(roles={"director"}).items] == []

    snap = store.load_snapshot("i1")
    at = T0 + timedelta(minutes=5)
    seq2 = replace(seq, signoffs=(Signoff("bob", "manager", "approve", at),))
    all2 = replace(all_, signoffs=(Signoff("lee", "hr", "approve", at, on_behalf_of="hu"),))
    any2 = replace(any_, status="done", decision="approve", decided_by="cat", closed_at=at)
    outcome = Outcome(
        snapshot=replace(snap, updated_at=at, tasks=(seq2, all2)),
        expected_row_version=0,
        changed=(seq2, all2, any2),
    )
    assert store.apply(outcome, at) == []
    assert role_rows(store) == {("i1-1", "director"), ("i1-2", "legal")}
    assert [t.id for t in store.task_page(roles={"director", "legal"}).items] == ["i1-1", "i1-2"]
    assert store.task_page(roles={"manager"}).items == []
    assert store.task_page(roles=set()).items == []
    assert store.get_task("i1-2").signoffs[0].on_behalf_of == "hu"


def test_task_page_filters_and_order(store: Store) -> None:
    a = task("a", 1, due_at=T0 + timedelta(days=3))
    b = task("b", 1, due_at=T0 + timedelta(days=1), process="travel")
    c = task("c", 1, due_at=None)
    d = task("d", 1, due_at=T0 + timedelta(days=1), created_at=T0 - timedelta(hours=1))
    for t in (a, b, c, d):
        store.apply(start(t.instance_id, tasks=(t,)), T0)
    # by due time, undated last; equal due times by id (the keyset order pages rely on)
    assert [t.instance_id for t in store.task_page().items] == ["b", "d", "a", "c"]
    assert [t.instance_id for t in store.task_page(process="travel").items] == ["b"]
    assert [t.instance_id for t in store.task_page(instance_id="a").items] == ["a"]
    overdue = store.task_page(overdue_at=T0 + timedelta(days=2)).items
    assert [t.instance_id for t in overdue] == ["b", "d"]
    assert len(store.task_page(limit=2).items) == 2
    assert store.task_page(status="done").items == []
    with pytest.raises(NotFound, match="list open tasks with 'tasks'"):
        store.get_task("zz-1")


def test_instance_page_filters(store: Store) -> None:
    store.apply(start("a"), T0)
    later = snapshot("b", process="travel", created_at=T0 + timedelta(1))
    store.apply(start("b", snapshot=later), T0)
    assert [s.id for s in store.instance_page().items] == ["a", "b"]
    assert [s.id for s in store.instance_page(process="travel").items] == ["b"]
    assert [s.id for s in store.instance_page(state="review").items] == ["a"]
    assert store.instance_page(status="completed").items == []
    assert [s.id for s in store.instance_page(limit=1).items] == ["a"]


def test_datetimes_come_back_aware_and_equal(store: Store) -> None:
    local = datetime(2024, 10, 1, 0, 0, 0, 1, tzinfo=SHANGHAI)  # 2024-09-30 16:00 UTC
    t = task(created_at=local, due_at=local + timedelta(days=1))
    store.apply(start(tasks=(t,), snapshot=snapshot(created_at=local, updated_at=local)), local)
    snap = store.load_snapshot("i1")
    assert snap.created_at == local and snap.created_at.tzinfo == UTC
    got = store.get_task("i1-1")
    assert got.due_at == local + timedelta(days=1) and got.due_at.tzinfo == UTC
    row = store.query_audit(instance_id="i1")[0]
    assert row["recorded_at"] == local and row["recorded_at"].utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.apply(start("i2"), datetime(2024, 1, 1))  # noqa: DTZ001


# ---------------------------------------------------------------------- audit


def test_audit_chains_are_per_instance(store: Store) -> None:
    store.apply(start("i1"), T0)
    store.apply(start("i2"), T0)
    store.append_audit([audit(None, "deploy")], T0)
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(tables.audit_log.c.chain_key, tables.audit_log.c.prev_hash).order_by(
                tables.audit_log.c.seq
            )
        ).all()
    assert [(k, p) for k, p in rows] == [("i1", ""), ("i2", ""), ("process:leave", "")]


def test_a_long_history_comes_back_whole(store: Store) -> None:
    """show reads an instance's history through query_audit, page by page: it used to stop
    at 10,000 entries without saying so."""
    n = 10_050
    store.append_audit([audit("i1", f"step{k}", actor="alice") for k in range(n)], T0)
    found = [r["action"] for r in store.query_audit(instance_id="i1")]
    assert found == [f"step{k}" for k in range(n)]
    assert len(store.query_audit(instance_id="i1", limit=1_500)) == 1_500


def test_query_audit_filters(store: Store) -> None:
    later = T0 + timedelta(days=1)
    store.append_audit(
        [
            audit("i1", "start", actor="alice"),
            audit("i1", "approve", actor="lee", on_behalf_of="bob", at=later),
            audit("i2", "start", actor="bob", process="travel"),
            audit(None, "deploy", actor="admin", process="travel"),
        ],
        T0,
    )
    keys = set(store.query_audit()[0])
    assert keys >= {"seq", "at", "recorded_at", "actor", "on_behalf_of", "instance_id"}
    assert keys >= {"process", "task_id", "action", "from_state", "to_state", "data", "hash"}

    def actions(**kw: Any) -> list[str]:
        return [r["action"] for r in store.query_audit(**kw)]

    assert actions(instance_id="i1") == ["start", "approve"]
    assert actions(actor="bob") == ["approve", "start"]
    assert actions(action="deploy") == ["deploy"]
    assert actions(process="travel") == ["start", "deploy"]
    assert actions(since=later) == ["approve"]
    assert actions(until=T0) == ["start", "start", "deploy"]
    assert actions(limit=1) == ["start"]
    assert store.query_audit()[0]["data"] == {"k": [1, 2], "z": "值", "a": {"b": None}}


# ---------------------------------------------------------------------- definitions


def test_definition_versions(store: Store) -> None:
    args = ("leave.yaml", T0, T0, "admin")
    assert store.get_definition("leave") is None
    assert store.save_definition("leave", "h1", "a: 1", *args) == (1, True)
    assert store.save_definition("leave", "h1", "a: 1", *args) == (1, False)
    assert store.save_definition("leave", "h2", "a: 2", *args) == (2, True)
    assert store.save_definition("leave", "h2", "a: 2", *args) == (2, False)
    # rolling back to the first text makes it the newest version again
    assert store.save_definition("leave", "h1", "a: 1", *args) == (3, True)
    assert store.save_definition("travel", "h1", "b: 1", *args) == (1, True)
    latest = store.get_definition("leave")
    assert latest is not None and latest["version"] == 3 and latest["source_text"] == "a: 1"
    first = store.get_definition("leave", 1)
    assert first is not None and first["source_hash"] == "h1" and first["deployed_at"] == T0
    assert store.get_definition("leave", 9) is None
    assert [(d["process"], d["version"]) for d in store.list_definitions()] == [
        ("leave", 3),
        ("travel", 1),
    ]


# ---------------------------------------------------------------------- timers


def test_timers_set_cancel_and_fire_exactly_once(store: Store) -> None:
    deadline = TimerRecord("i1-1:deadline", "i1", "deadline", T0 + timedelta(days=1), "review")
    remind = TimerRecord("i1-1:remind", "i1", "reminder", T0 + timedelta(hours=4), "review")
    other = TimerRecord("i1:audit", "i1", "escalation", T0 + timedelta(days=9), "elsewhere")
    store.apply(start(timers_set=(deadline, remind, other)), T0)
    assert store.due_timers(T0) == []
    assert store.due_timers(T0 + timedelta(days=2)) == [remind, deadline]

    # Setting a timer that exists is a no-op, even with different content.
    snap = store.load_snapshot("i1")
    moved = replace(deadline, due_at=T0 + timedelta(days=5))
    store.apply(Outcome(snapshot=snap, expected_row_version=0, timers_set=(moved,)), T0)
    assert store.due_timers(T0 + timedelta(days=2))[1].due_at == deadline.due_at

    # The reminder fires once; a second worker that saw it too gets a Conflict.
    at = T0 + timedelta(hours=5)
    snap = store.load_snapshot("i1")
    fire = Outcome(
        snapshot=replace(snap, updated_at=at),
        expected_row_version=snap.row_version,
        audit=(audit("i1", "remind", actor="system"),),
        notices=(Notice("reminder", ("role:manager",), "i1", "i1-1"),),
    )
    store.apply(fire, at, fired_timer=remind.id)
    snap = store.load_snapshot("i1")
    again = replace(fire, snapshot=snap, expected_row_version=snap.row_version)
    with pytest.raises(Conflict, match="timer i1-1:remind has already fired"):
        store.apply(again, at, fired_timer=remind.id)
    assert store.load_snapshot("i1").row_version == snap.row_version
    assert len(store.query_audit(action="remind")) == 1
    assert [n["event"] for n in pending_notices(store)] == ["task_assigned", "reminder"]

    # Leaving a state cancels its pending timers, and only those of the states named.
    store.apply(decide(snap, snap.tasks[0], timers_cancel_states=("review",)), at)
    assert [t.id for t in store.due_timers(T0 + timedelta(days=30))] == [other.id]
    snap = store.load_snapshot("i1")
    leave = Outcome(snap, snap.row_version, timers_cancel_states=("elsewhere",))
    store.apply(leave, at)
    status = {t["id"]: (t["status"], t["fired_at"]) for t in store.instance_timers("i1")}
    assert status == {
        remind.id: ("fired", at),
        deadline.id: ("cancelled", None),
        other.id: ("cancelled", None),
    }
    assert store.due_timers(T0 + timedelta(days=30)) == []
    last = store.load_snapshot("i1")
    with pytest.raises(Conflict, match="already fired or was cancelled"):
        store.apply(Outcome(snapshot=last, expected_row_version=last.row_version), at, deadline.id)


# ---------------------------------------------------------------------- schedules, outbox


def test_a_schedule_slot_runs_once(store: Store) -> None:
    """The claim shares the step's transaction: a loser writes nothing at all."""
    planned = datetime(2024, 3, 1, 8, 0, tzinfo=SHANGHAI)
    store.apply(start("i9"), T0, schedule_run=("monthly", planned))
    with pytest.raises(Conflict, match="already ran"):
        store.apply(start("i8"), T0, schedule_run=("monthly", planned.astimezone(UTC)))
    failed = audit(None, "schedule_failed")
    with pytest.raises(Conflict, match="already ran"):
        store.fail_schedule_run("monthly", planned, failed, [], T0)
    assert [s.id for s in store.instance_page().items] == ["i9"]
    assert store.fail_schedule_run("monthly", planned + timedelta(days=31), failed, [], T0)
    store.apply(start("i7"), T0, schedule_run=("weekly", planned))
    assert store.last_schedule_run("monthly") == planned + timedelta(days=31)
    with store.engine.connect() as conn:
        got = conn.execute(
            sa.select(tables.schedule_runs.c.instance_id).where(
                tables.schedule_runs.c.schedule == "monthly",
                tables.schedule_runs.c.planned_at == planned,
            )
        ).scalar()
    assert got == "i9"


# ---------------------------------------------------------------------- concurrency


def _race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work`` in ``n`` threads released together; results or exceptions, by index."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # collected for the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.mark.parametrize("workers", [6])
def test_concurrent_steps_on_one_instance_have_one_winner(db_url: str, workers: int) -> None:
    stores = [Store.open(db_url) for _ in range(workers)]
    try:
        stores[0].apply(start(), T0)
        snap = stores[0].load_snapshot("i1")

        def work(i: int) -> list[int]:
            return stores[i].apply(decide(snap, snap.tasks[0], user=f"u{i}"), T0)

        results = _race(workers, work)
        winners = [r for r in results if isinstance(r, list)]
        assert len(winners) == 1, results
        assert all(isinstance(r, Conflict) for r in results if not isinstance(r, list))
        assert stores[0].load_snapshot("i1").row_version == 1
        assert count(stores[0], tables.audit_log) == 2
        assert stores[0].check_audit().problems == []
    finally:
        for s in stores:
            s.close()


def test_concurrent_claims_and_audit_appends(db_url: str) -> None:
    workers = 6
    stores = [Store.open(db_url) for _ in range(workers)]
    try:
        planned = T0.replace(microsecond=0)
        failed = audit(None, "schedule_failed")
        claims = _race(workers, lambda i: stores[i].fail_schedule_run("s", planned, failed, [], T0))
        assert sum(isinstance(c, list) for c in claims) == 1, claims
        assert sum(isinstance(c, Conflict) for c in claims) == workers - 1, claims

        def append(i: int) -> list[int]:
            seqs: list[int] = []
            for j in range(5):
                seqs += stores[i].append_audit([audit(None, f"a{i}.{j}")], T0)
            return seqs

        appended = _race(workers, append)
        assert all(isinstance(r, list) and len(r) == 5 for r in appended), appended
        assert stores[0].check_audit().problems == []

        # everyone deploys the same text at once: one version, created exactly once
        defs = _race(
            workers,
            lambda i: stores[i].save_definition("p", "h0", "x", "p.yaml", T0, T0, "a"),
        )
        assert {v for v, _ in defs} == {1}, defs
        assert sum(created for _, created in defs) == 1
    finally:
        for s in stores:
            s.close()


# ---------------------------------------------------------------------- batches


def test_apply_batch_isolates_conflicts(store: Store) -> None:
    timer = TimerRecord("i1:t", "i1", "deadline", T0, "review")
    store.apply(start("i1", timers_set=(timer,)), T0)
    snap = store.load_snapshot("i1")
    stale = decide(snap, snap.tasks[0])
    store.apply(stale, T0)  # the batch's copy of this step has lost already
    fire = Outcome(snapshot=store.load_snapshot("i1"), expected_row_version=1)
    results = store.apply_batch(
        [
            (start("i3"), None),
            (stale, None),
            (start("i1"), None),  # the id exists
            (fire, timer.id),
            (start("i2"), None),
        ],
        T0,
    )
    assert isinstance(results[0], list) and len(results[0]) == 1
    assert isinstance(results[1], Conflict) and "changed by someone else" in str(results[1])
    assert isinstance(results[2], Conflict) and "already exists" in str(results[2])
    assert results[3] == []
    assert isinstance(results[4], list) and len(results[4]) == 1
    assert [s.id for s in store.instance_page().items] == ["i1", "i2", "i3"]
    assert store.load_snapshot("i1").row_version == 2
    assert store.instance_timers("i1")[0]["status"] == "fired"
    assert count(store, tables.tasks) == 3
    assert store.check_audit().problems == []
    again = Outcome(snapshot=store.load_snapshot("i1"), expected_row_version=2)
    [lost] = store.apply_batch([(again, timer.id)], T0)
    assert isinstance(lost, Conflict) and "already fired" in str(lost)
    assert store.load_snapshot("i1").row_version == 2
    assert store.apply_batch([], T0) == []


def test_apply_batch_error_rolls_back_the_whole_batch(store: Store) -> None:
    orphan = start("i2", timers_set=(TimerRecord("t", "nobody", "deadline", T0, "x"),))
    with pytest.raises(sa.exc.IntegrityError):
        store.apply_batch([(start("i1"), None), (orphan, None)], T0)
    assert store.instance_page().items == []
    assert count(store, tables.audit_log) == 0


# ---------------------------------------------------------------------- query plans


def _plan(store: Store, sql: str, params: dict[str, Any] | None = None) -> str:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params or {}).all()
    return " | ".join(str(r[-1]) for r in rows)


def test_sqlite_hot_queries_use_the_selective_indexes(sqlite_url: str) -> None:
    """With no statistics SQLite likes (status, due_at); at 100k open tasks that's a scan.

    The list queries are checked in test_paging.py."""
    with Store.open(sqlite_url) as s:
        hot = s._steps
        assert "ix_tasks_instance_id_status" in _plan(s, hot.SNAPSHOT, {"id": "i1"})
        assert "USING INDEX" in _plan(s, hot.CHAIN_HEAD, {"chain_key": "i1"})
        cancel = _plan(s, hot.CANCEL_STATE, {"instance_id": "i1", "state": "x"})
        assert "ix_timers_instance_id_status" in cancel


def test_schema_newer_than_the_code_is_refused_clearly(db_url: str) -> None:
    from engine.errors import ShenpiError

    Store.open(db_url).close()
    engine = open_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(ShenpiError, match="revision '9999', which this version"):
            migrate(engine)
    finally:
        engine.dispose()
