"""A reminder the working day before the deadline at 09:00, end to end through ``tick``."""

from __future__ import annotations

from pathlib import Path

from .helpers import Shell

PROCESS = """\
process: remind
title: Remind
start: {to: work}
states:
  work:
    deadline:
      working_days: 3
      at: "17:30"
      reminders: [{before: {working_days: 1}, at: "09:00"}]
    task:
      role: complaint_clerk
      actions:
        done: {to: finished}
  finished: {final: true}
"""


def test_reminder_at_nine_on_the_working_day_before_the_deadline(db_url: str, procs: Path) -> None:
    """Opened Mon 28 Sep 2026: working days 29, 30 Sep and (after National Day) 8 Oct, so
    it is due Thu 8 Oct 17:30 and reminded at 09:00 on Wed 30 Sep, before the holiday."""
    (procs / "remind.yaml").write_text(PROCESS, encoding="utf-8")
    sh = Shell(db_url, procs)
    sh.ok("deploy", now="2026-09-27T09:00+08:00")
    inst = sh.js("start remind --as wang.fang", now="2026-09-28T10:00+08:00")
    assert inst["tasks"][0]["due_at"] == "2026-10-08T17:30:00+08:00"

    early = sh.ok("tick", now="2026-09-30T08:59+08:00")
    assert "fired=0" in early.out and "Reminder" not in early.out + early.err
    on_time = sh.ok("tick", now="2026-09-30T09:00+08:00")
    assert "fired=1" in on_time.out
    shown = on_time.out + on_time.err
    assert "Reminder for 赵磊: work" in shown and "is due 2026-10-08 17:30" in shown
    assert "fired=0" in sh.ok("tick", now="2026-09-30T09:01+08:00").out  # once only

    reminders = [d for d in sh.js("notices") if d["event"] == "reminder"]
    assert {d["user_id"] for d in reminders} >= {"zhao.lei"}
    assert {d["created_at"] for d in reminders} == {"2026-09-30T09:00:00+08:00"}
    [entry] = [e for e in sh.js(f"audit --instance {inst['id']}") if e["action"] == "reminder"]
    assert entry["data"]["planned_at"] == "2026-09-30T09:00:00+08:00"
    assert entry["data"]["late_by_s"] == 0
