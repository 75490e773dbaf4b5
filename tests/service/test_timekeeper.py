"""tick(): timers and scheduled runs fire exactly once, also after downtime and with two workers."""

from __future__ import annotations

import multiprocessing as mp
import shutil
from pathlib import Path

import pytest

from engine.errors import Conflict
from service.timekeeper import tick
from service.workflow import Workflow
from storage.store import Store
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
    assert reassigned.roles == ("service_director",)
    late = trail[-1]["data"]
    assert late["planned_at"] == at("2026-10-10T00:00").isoformat()


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
    assert check.verify_audit() == []
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
    assert [t.instance_id for t in wf.tasks(user="zhou.min")] == [snap.id]
    done = wf.act(snap.tasks[0].id, "held", "zhou.min", now=at("2026-11-02T10:00"))
    assert done.status == "completed"
    assert wf.store.verify_audit() == []


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
    [notice] = wf.store.pending_notices()
    assert (notice["event"], notice["recipients"]) == (
        "schedule_failed",
        ["role:complaint_handler"],
    )
    assert notice["instance_id"] is None
    # recorded once: later ticks neither retry the slot nor notify again
    assert tick(wf, at("2026-11-02T09:00")).failed == 0
    assert len(wf.store.pending_notices()) == 1
    assert wf.store.verify_audit() == []
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
    [notice] = wf.store.pending_notices()
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
    assert len(second.store.pending_notices()) == 1
