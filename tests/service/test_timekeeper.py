"""tick(): timers and scheduled runs fire exactly once, also after downtime and with two workers."""

from __future__ import annotations

import multiprocessing as mp
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.errors import Conflict
from service.timekeeper import tick
from service.workflow import Workflow
from storage.auditkeys import AuditKeys
from storage.store import Store
from storage.tables import instances, task_roles, tasks, timers
from tests.storage.test_store import pending_notices
from tests.timeproc import ROOT, WEEKLY, at


def workflow(db_url: str, procs: Path) -> Workflow:
    return Workflow(Store.open(db_url), procs)


def test_deadline_reminder_and_escalations_fire_once_each(db_url: str, procs: Path) -> None:
    wf = workflow(db_url, procs)
    wf.deploy(now=at("2026-09-29T09:00"))
    snap = wf.start("chase", "wang.fang", {}, now=at("2026-09-30T10:00"))
    task = snap.tasks[0]
    # one working day after 30 Sep: 1-7 Oct are holidays, so the end of Thursday 8 Oct
    assert task.due_at == at("2026-10-09T00:00")
    assert tick(wf, at("2026-10-08T21:00")).fired == 0
    assert tick(wf, at("2026-10-08T22:00")).fired == 1  # reminder, 2 h before
    report = tick(wf, at("2026-10-09T00:00"))
    assert report.fired == 2  # the overdue notice and level 1 (notify), both at the deadline
    assert tick(wf, at("2026-10-09T12:00")).fired == 0
    assert tick(wf, at("2026-10-10T00:00")).fired == 1  # level 2 after one more working day
    assert tick(wf, at("2026-10-20T00:00")).fired == 0
    trail = wf.store.query_audit(instance_id=snap.id)
    kinds = [(e["action"], e["data"].get("level")) for e in trail]
    assert kinds == [
        ("start", None),
        ("reminder", None),
        ("deadline", None),
        ("escalation", 1),
        ("escalation", 2),
    ]
    reassigned = wf.store.load_snapshot(snap.id).tasks[0]
    # the clerk may still act beside the director (keep_original, the default)
    assert reassigned.roles == ("complaint_clerk", "service_director")
    late = trail[-1]["data"]
    assert late["planned_at"] == at("2026-10-10T00:00").isoformat()


@pytest.mark.parametrize("key", [None, "k" * 32], ids=["plain", "keyed"])
def test_timers_fired_in_a_batch_keep_the_audit_chains_whole(
    db_url: str, procs: Path, key: str | None
) -> None:
    """A tick writes its batch its own way (pipelined on PostgreSQL): the entries it adds
    must link, carry the key and move the anchors exactly as a single step does."""
    keys = AuditKeys.of(key) if key else AuditKeys()
    wf = Workflow(Store.open(db_url, audit_keys=keys), procs)
    wf.deploy(now=at("2026-09-29T09:00"))
    snaps = [wf.start("chase", "wang.fang", {}, now=at("2026-09-30T10:00")) for _ in range(3)]
    assert tick(wf, at("2026-10-09T00:00")).fired == 9  # reminder, overdue, level 1 each
    wf.act(snaps[0].tasks[0].id, "done", "zhao.lei", now=at("2026-10-09T01:00"))
    check = wf.store.check_audit(require_key=key is not None)
    assert check.problems == []
    assert check.entries == 1 + 3 * 4 + 1  # deploy, start + three timers each, one act


def test_timers_that_fell_due_while_stopped_fire_once_on_restart(db_url: str, procs: Path) -> None:
    wf = workflow(db_url, procs)
    wf.deploy(now=at("2026-09-29T09:00"))
    snap = wf.start("chase", "wang.fang", {}, now=at("2026-09-30T10:00"))
    wf.store.close()
    # "restart" weeks later: a new process, a new connection
    again = workflow(db_url, procs)
    first = tick(again, at("2026-11-02T09:00"))
    assert first.fired == 4
    assert tick(again, at("2026-11-02T09:00")).fired == 0
    escalations = again.store.query_audit(instance_id=snap.id, action="escalation")
    assert len(escalations) == 2
    assert all(e["data"]["late_by_s"] > 0 for e in escalations)


def test_leaving_the_state_cancels_its_timers(db_url: str, procs: Path) -> None:
    wf = workflow(db_url, procs)
    wf.deploy(now=at("2026-09-29T09:00"))
    snap = wf.start("chase", "wang.fang", {}, now=at("2026-09-30T10:00"))
    wf.act(snap.tasks[0].id, "done", "zhao.lei", now=at("2026-09-30T11:00"))
    assert tick(wf, at("2026-12-01T00:00")).fired == 0
    statuses = {t["status"] for t in wf.store.instance_timers(snap.id)}
    assert statuses == {"cancelled"}


def test_schedule_runs_once_per_slot_and_catches_up(db_url: str, weekly: Path) -> None:
    wf = workflow(db_url, weekly)
    wf.deploy(now=at("2026-11-01T12:00"))  # a Sunday
    assert tick(wf, at("2026-11-02T07:59")).started == []
    started = tick(wf, at("2026-11-02T08:00")).started
    assert len(started) == 1
    assert tick(wf, at("2026-11-02T09:00")).started == []
    # down for two weeks: the missed slots coalesce into the latest one
    late = tick(wf, at("2026-11-17T10:00")).started
    assert len(late) == 1
    inst = wf.store.load_snapshot(late[0])
    assert inst.created_at == at("2026-11-16T08:00")
    entry = wf.store.query_audit(instance_id=late[0], action="start")[0]
    assert entry["data"]["schedule"] == "monday"
    assert entry["data"]["planned_at"] == at("2026-11-16T08:00").isoformat()


def _ticker(url: str, procs: str, moments: list[str], barrier, out) -> None:  # noqa: ANN001
    wf = Workflow(Store.open(url), Path(procs))
    fired = started = 0
    for moment in moments:
        barrier.wait(timeout=60)
        report = tick(wf, at(moment))
        fired += report.fired
        started += len(report.started)
    out.put((fired, started))
    wf.store.close()


def test_two_workers_fire_each_timer_and_slot_once(db_url: str, weekly: Path) -> None:
    procs = weekly
    wf = workflow(db_url, procs)
    wf.deploy(now=at("2026-09-27T09:00"))
    ids = [wf.start("chase", "wang.fang", {}, now=at("2026-09-30T10:00")).id for _ in range(20)]
    # the weekly instances' own tasks have no deadline: only the 20 chases have timers
    wf.store.close()
    moments = ["2026-10-08T22:00", "2026-10-09T00:00", "2026-10-10T00:00", "2026-10-12T08:30"]
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    workers = [
        ctx.Process(target=_ticker, args=(db_url, str(procs), moments, barrier, out))
        for _ in range(2)
    ]
    for w in workers:
        w.start()
    results = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert sum(r[0] for r in results) == 20 * 4  # reminder, deadline, two escalation levels
    assert sum(r[1] for r in results) == 2  # Mondays 5 Oct and 12 Oct, once each
    check = Store.open(db_url)
    for iid in ids:
        fired = [e for e in check.query_audit(instance_id=iid) if e["actor"] == "system"]
        assert len(fired) == 4
    assert check.check_audit().problems == []
    check.close()


BRITTLE = """\
process: brittle
title: Brittle
variables:
  n: {type: integer, default: 0}
  x: {type: decimal}
start: {to: work}
states:
  work:
    deadline: {hours: 1, escalations: [{goto: broken}]}
    task: {role: complaint_clerk, actions: {done: {to: end}}}
  broken:
    set: {x: "1 / n"}
    task: {role: complaint_clerk, actions: {done: {to: end}}}
  end: {final: true}
"""


def test_broken_timers_do_not_hide_the_ones_due_after_them(db_url: str, procs: Path) -> None:
    (procs / "brittle.yaml").write_text(BRITTLE, encoding="utf-8")
    wf = workflow(db_url, procs)
    wf.deploy(now=at("2026-09-29T09:00"))
    for _ in range(3):
        wf.start("brittle", "wang.fang", {}, now=at("2026-09-30T08:00"))
    chase = wf.start("chase", "wang.fang", {}, now=at("2026-09-30T10:00"))
    report = tick(wf, at("2026-10-12T00:00"), batch=2)
    assert report.failed == 3
    assert report.fired == 3 + 4  # the brittle overdue notices and all of the healthy ones
    assert len(wf.store.query_audit(instance_id=chase.id, actor="system")) == 4


def chen_jun_away(procs: Path, *, delegate: bool) -> None:
    """org.yaml with the director, the weekly schedule's `as:` user, marked inactive."""
    org = procs / "org.yaml"
    text = org.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("  chen.jun:"))
    away = line.replace(", delegate: zhou.min}", ", delegate: zhou.min, active: false}")
    if not delegate:
        away = away.replace(", delegate: zhou.min", "")
    assert away != line
    org.write_text(text.replace(line, away), encoding="utf-8")


def test_an_absent_schedule_user_runs_through_their_delegate(db_url: str, weekly: Path) -> None:
    chen_jun_away(weekly, delegate=True)
    wf = workflow(db_url, weekly)
    wf.deploy(now=at("2026-11-01T12:00"))
    report = tick(wf, at("2026-11-02T08:00"))
    assert (report.failed, len(report.started)) == (0, 1)
    snap = wf.store.load_snapshot(report.started[0])
    assert snap.requester == "chen.jun"
    [entry] = wf.store.query_audit(instance_id=snap.id, action="start")
    assert (entry["actor"], entry["on_behalf_of"]) == ("zhou.min", "chen.jun")
    assert entry["data"]["schedule"] == "monday"
    assert [t.instance_id for t in wf.tasks(user="zhou.min").items] == [snap.id]
    done = wf.act(snap.tasks[0].id, "held", "zhou.min", now=at("2026-11-02T10:00"))
    assert done.status == "completed"
    assert wf.store.check_audit().problems == []


WEEKLY_OWNED = WEEKLY.replace("start:", "owner_role: complaint_handler\nstart:")


def test_a_run_nobody_can_start_is_recorded_failed_and_the_owner_told(
    db_url: str, procs: Path
) -> None:
    (procs / "weekly.yaml").write_text(WEEKLY_OWNED, encoding="utf-8")
    chen_jun_away(procs, delegate=False)
    wf = workflow(db_url, procs)
    wf.deploy(now=at("2026-11-01T12:00"))
    report = tick(wf, at("2026-11-02T08:00"))
    assert (report.failed, report.started) == (1, [])
    [entry] = wf.store.query_audit(action="schedule_failed")
    assert (entry["actor"], entry["process"], entry["instance_id"]) == ("system", "weekly", None)
    assert entry["at"] == at("2026-11-02T08:00")
    data = entry["data"]
    assert (data["schedule"], data["as"]) == ("monday", "chen.jun")
    assert "'chen.jun' is not active and has no delegate" in data["reason"]
    [notice] = pending_notices(wf.store)
    assert (notice["event"], notice["recipients"]) == (
        "schedule_failed",
        ["role:complaint_handler"],
    )
    assert notice["instance_id"] is None
    # recorded once: later ticks neither retry the slot nor notify again
    assert tick(wf, at("2026-11-02T09:00")).failed == 0
    assert len(pending_notices(wf.store)) == 1
    assert wf.store.check_audit().problems == []
    # chen.jun is back: the next Monday starts as usual
    (procs / "weekly.yaml").unlink()
    shutil.copy(ROOT / "processes" / "org.yaml", procs / "org.yaml")
    back = workflow(db_url, procs)
    assert len(tick(back, at("2026-11-09T08:00")).started) == 1


def test_the_owner_defaults_to_who_may_start_by_hand(db_url: str, procs: Path) -> None:
    text = WEEKLY.replace("start: {to: hold", "start: {roles: [service_director], to: hold")
    (procs / "weekly.yaml").write_text(text, encoding="utf-8")
    chen_jun_away(procs, delegate=False)
    wf = workflow(db_url, procs)
    wf.deploy(now=at("2026-11-01T12:00"))
    assert tick(wf, at("2026-11-02T08:00")).failed == 1
    [notice] = pending_notices(wf.store)
    assert notice["recipients"] == ["role:service_director"]


def test_two_workers_record_a_failed_run_once(db_url: str, procs: Path) -> None:
    (procs / "weekly.yaml").write_text(WEEKLY_OWNED, encoding="utf-8")
    chen_jun_away(procs, delegate=False)
    first, second = workflow(db_url, procs), workflow(db_url, procs)
    first.deploy(now=at("2026-11-01T12:00"))
    # both computed the same due slot; the second finds it claimed when it records it
    assert tick(first, at("2026-11-02T08:00")).failed == 1
    from service.timekeeper import _fail_scheduled

    proc = second.process("weekly")
    with pytest.raises(Conflict):
        _fail_scheduled(
            second, proc, proc.spec.schedules[0], "weekly:monday", at("2026-11-02T08:00"),
            at("2026-11-02T08:00"), "again",
        )  # fmt: skip
    assert len(second.store.query_audit(action="schedule_failed")) == 1
    assert len(pending_notices(second.store)) == 1


PING = """\
process: ping
title: Ping
start: {to: wait}
states:
  wait:
    deadline: {hours: 1}
    task: {role: complaint_clerk, actions: {done: {to: end}}}
  end: {final: true}
"""


def test_batches_stay_at_the_configured_size_whatever_the_backlog(
    db_url: str, procs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages read and batches written never exceed ``batch``: not after timers fired, not
    after timers failed (they used to widen every following page: 4, 6, 11, 20, ...)."""
    (procs / "brittle.yaml").write_text(BRITTLE, encoding="utf-8")
    (procs / "ping.yaml").write_text(PING, encoding="utf-8")
    wf = workflow(db_url, procs)
    wf.deploy(now=at("2026-09-29T09:00"))
    # due first: three instances with two timers each at one instant, one of them failing
    for _ in range(3):
        wf.start("brittle", "wang.fang", {}, now=at("2026-09-30T08:00"))
    pings = [wf.start("ping", "wang.fang", {}, now=at("2026-09-30T10:00")).id for _ in range(30)]
    pages: list[int] = []
    batches: list[int] = []
    read, write = wf.store.due_timers, wf.store.apply_batch

    def due_timers(*args: Any, **kwargs: Any) -> Any:
        page = read(*args, **kwargs)
        pages.append(len(page))
        return page

    def apply_batch(steps: Any, recorded_at: Any) -> Any:
        batches.append(len(steps))
        return write(steps, recorded_at)

    monkeypatch.setattr(wf.store, "due_timers", due_timers)
    monkeypatch.setattr(wf.store, "apply_batch", apply_batch)
    report = tick(wf, at("2026-10-12T00:00"), batch=4)
    assert (report.fired, report.failed, report.contested) == (3 + 30, 3, 0)
    assert max(pages) == 4 and max(batches) == 4, (pages, batches)
    assert sum(batches) == 33  # every fired timer was written once, none retried
    monkeypatch.undo()
    for iid in pings:
        assert len(wf.store.query_audit(instance_id=iid, actor="system")) == 1
    assert tick(wf, at("2026-10-12T00:00"), batch=4).fired == 0


def _clone_instance(url: str, template: str, copies: int) -> None:
    """``copies`` more instances just like ``template`` (its rows, its open task, its
    pending timers), made by INSERT ... SELECT in one statement per table: 30,000 engine
    steps would take minutes on this machine, and only the firing is under test."""
    engine = sa.create_engine(url)

    def ids(col: str) -> str:
        return f"replace({col}, :tpl, :tpl || '.' || g)"

    def copy(table: sa.Table, id_cols: set[str], where: str) -> str:
        names = [c.name for c in table.c]
        cols = ", ".join(f'"{n}"' for n in names)
        select = ", ".join(ids(f't."{n}"') if n in id_cols else f't."{n}"' for n in names)
        return (
            f"INSERT INTO {table.name} ({cols}) SELECT {select} "
            f"FROM {table.name} t, generate_series(1, :n) g WHERE {where}"
        )

    with engine.begin() as conn:
        params = {"tpl": template, "n": copies}
        conn.execute(sa.text(copy(instances, {"id"}, "t.id = :tpl")), params)
        conn.execute(sa.text(copy(tasks, {"id", "instance_id"}, "t.instance_id = :tpl")), params)
        where = "t.task_id IN (SELECT id FROM tasks WHERE instance_id = :tpl)"
        conn.execute(sa.text(copy(task_roles, {"task_id"}, where)), params)
        conn.execute(
            sa.text(copy(timers, {"id", "instance_id", "task_id"}, "t.instance_id = :tpl")), params
        )
        # this server runs without autovacuum: plan the hot statements on real row counts
        for table in ("instances", "tasks", "task_roles", "timers", "audit_log"):
            conn.execute(sa.text(f"ANALYZE {table}"))
    engine.dispose()


@pytest.mark.postgres
def test_a_backlog_of_30000_timers_fires_once_each_with_default_lock_slots(
    pg_url: str, procs: Path
) -> None:
    """Each timer of a batch holds PostgreSQL lock slots until the commit; batches that
    grew with the backlog ran out of them near 6,000 due timers
    ("out of shared memory ... increase max_locks_per_transaction")."""
    n = 30_000
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        slots = int(conn.execute(sa.text("SHOW max_locks_per_transaction")).scalar_one())
    engine.dispose()
    if slots > 64:
        pytest.skip(f"max_locks_per_transaction is raised to {slots}; this test needs the default")
    (procs / "ping.yaml").write_text(PING, encoding="utf-8")
    wf = workflow(pg_url, procs)
    wf.deploy(now=at("2026-09-29T09:00"))
    template = wf.start("ping", "wang.fang", {}, now=at("2026-09-30T10:00")).id
    _clone_instance(pg_url, template, n - 1)
    began = time.perf_counter()
    report = tick(wf, at("2026-09-30T12:00"))
    seconds = time.perf_counter() - began
    assert (report.fired, report.failed, report.contested) == (n, 0, 0), seconds
    with wf.store.engine.connect() as conn:
        counts = conn.execute(
            sa.text(
                "SELECT count(*), count(DISTINCT instance_id) FROM audit_log "
                "WHERE actor = 'system' AND action = 'deadline'"
            )
        ).one()
        pending = conn.execute(
            sa.text("SELECT count(*) FROM timers WHERE status = 'pending' AND due_at <= :now"),
            {"now": at("2026-09-30T12:00")},
        ).scalar_one()
    assert tuple(counts) == (n, n)  # one entry per instance: each timer fired exactly once
    assert pending == 0
    assert tick(wf, at("2026-09-30T12:00")).fired == 0


RELAY = """\
process: relay
title: Relay
variables:
  since: {type: date}
start: {to: first, accept: [since]}
states:
  first:
    deadline: {hours: 1, escalations: [{goto: second}]}
    task: {role: complaint_clerk, actions: {done: {to: end}}}
  second:
    deadline: {hours: 1, from: since}
    task: {role: complaint_clerk, actions: {done: {to: end}}}
  end: {final: true}
"""


def test_a_timer_set_already_due_behind_the_cursor_fires_in_the_same_tick(
    db_url: str, procs: Path
) -> None:
    """The escalation enters a state whose deadline counts from a date weeks back: its
    timer is due at once but sorts before the page cursor, so the tick goes back for it."""
    (procs / "relay.yaml").write_text(RELAY, encoding="utf-8")
    wf = workflow(db_url, procs)
    wf.deploy(now=at("2026-09-29T09:00"))
    snap = wf.start("relay", "wang.fang", {"since": "2026-09-01"}, now=at("2026-09-30T10:00"))
    report = tick(wf, at("2026-10-12T00:00"), batch=1)
    assert (report.fired, report.failed) == (3, 0)
    actions = [e["action"] for e in wf.store.query_audit(instance_id=snap.id, actor="system")]
    assert sorted(actions) == ["deadline", "deadline", "escalation"]
    assert tick(wf, at("2026-10-12T00:00")).fired == 0
