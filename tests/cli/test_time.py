"""Visible time through the CLI: due times, overdue lists, deadlines in show, the calendar."""

from __future__ import annotations

from pathlib import Path

from .helpers import Shell


def test_overdue_tasks_and_deadlines_in_show(db_url: str, procs: Path) -> None:
    sh = Shell(db_url, procs)
    sh.ok("deploy", now="2026-09-29T09:00+08:00")
    inst = sh.js("start chase --as wang.fang", now="2026-09-30T10:00+08:00")
    task = inst["tasks"][0]
    assert task["due_at"] == "2026-10-09T00:00:00+08:00"
    assert sh.js("tasks --overdue", now="2026-10-08T23:59+08:00") == []
    [late] = sh.js("tasks --overdue", now="2026-10-09T00:01+08:00")
    assert late["id"] == task["id"] and late["overdue"] is True and late["seconds_left"] == -60
    sh.ok("tick", now="2026-10-09T00:01+08:00")
    shown = sh.js(f"show {inst['id']}", now="2026-10-09T00:01+08:00")
    timers = {(t["kind"], t["level"]): t for t in shown["deadlines"]["timers"]}
    assert timers[("deadline", None)]["status"] == "fired"
    assert timers[("escalation", 1)]["fired_at"] is not None
    assert timers[("escalation", 2)]["status"] == "pending"
    assert timers[("escalation", 2)]["due_at"] == "2026-10-10T00:00:00+08:00"
    assert shown["tasks"][0]["overdue"] is True
    text = sh.ok(f"show {inst['id']}", now="2026-10-09T00:01+08:00").out
    assert "timers:" in text and "escalation" in text


def test_calendar_lists_holidays_and_working_weekends(db_url: str) -> None:
    sh = Shell(db_url)
    sh.ok("deploy")  # only deploy creates the database
    cal = sh.js("calendar 2026")
    assert cal["adjustments_known"] is True
    assert "2026-10-10" in cal["working_weekend_days"]
    assert "2026-02-14" in cal["working_weekend_days"]
    assert any(d["date"] == "2026-10-01" for d in cal["non_working_days"])
    later = sh.js("calendar 2030")
    assert later["adjustments_known"] is False
    assert any("2030" in w for w in later["warnings"])
    assert "warning:" in sh.ok("calendar 2030").out
    sh.refused("calendar 2026 --name nosuch", "unknown calendar 'nosuch'")


def test_provisional_years_are_marked_in_calendar_and_show(db_url: str, procs: Path) -> None:
    sh = Shell(db_url, procs)
    official = sh.js("calendar 2026")
    assert official["provisional"] is False
    assert "2026 (official)" in sh.ok("calendar 2026").out
    later = sh.js("calendar 2027")
    assert later["provisional"] is True
    off = {d["date"] for d in later["non_working_days"]}
    assert {"2027-10-04", "2027-10-05"} <= off and later["working_weekend_days"] == []
    text = sh.ok("calendar 2027").out
    assert "2027 (provisional)" in text and "warning: calendar cn: 2027 is provisional" in text
    # a task due in 2027 shows its deadline as provisional; one due in 2026 does not
    sh.ok("deploy", now="2026-09-29T09:00+08:00")
    old = sh.js("start chase --as wang.fang", now="2026-09-30T10:00+08:00")
    new = sh.js("start chase --as wang.fang", now="2027-09-30T10:00+08:00")
    assert new["tasks"][0]["due_at"] == "2027-10-07T00:00:00+08:00"  # 1-5 Oct are off
    shown = sh.js(f"show {new['id']}", now="2027-09-30T10:00+08:00")
    assert shown["deadlines"]["provisional_years"] == [2027]
    assert all(t["provisional"] for t in shown["deadlines"]["timers"])
    assert "2027 is provisional" in sh.ok(f"show {new['id']}").out
    before = sh.js(f"show {old['id']}", now="2026-09-30T10:00+08:00")["deadlines"]
    assert before["provisional_years"] == [] and before["calendar_warnings"] == []
