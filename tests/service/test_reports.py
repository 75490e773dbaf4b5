"""Built-in reports: the counts and times match what the test itself made happen."""

from __future__ import annotations

import csv
import io
import math
import shutil
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from service import timekeeper
from service.workflow import Workflow
from tests.cli.helpers import Shell

SH = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[2]
REVIEW = """\
process: review
title: Review
start: {to: check}
states:
  check:
    deadline:
      hours: 24
      escalations: [{after: {hours: 1}, notify: [service_director]}]
    task:
      role: complaint_handler
      actions:
        approve: {to: approved}
        reject: {to: rejected}
  approved: {final: true, outcome: approved}
  rejected: {final: true, outcome: rejected}
"""
# (start day in October, handler, hours to decide, action); None: still open
CASES = [
    (1, "li.qiang", 2, "approve"),
    (2, "li.qiang", 30, "approve"),
    (3, "sun.li", 5, "reject"),
    (5, "sun.li", 24, "approve"),
    (8, "li.qiang", 7, "approve"),
    (9, "zhou.min", 50, "reject"),
    (12, "sun.li", 1, "approve"),
    (20, "li.qiang", 12, "approve"),
    (31, "li.qiang", None, None),
]
NOW = datetime(2026, 11, 3, 9, 0, tzinfo=SH)


@pytest.fixture
def filled(db_url: str, tmp_path: Path) -> Shell:
    procs = tmp_path / "processes"
    procs.mkdir()
    shutil.copy(ROOT / "processes" / "org.yaml", procs / "org.yaml")
    (procs / "review.yaml").write_text(REVIEW, encoding="utf-8")
    flow = Workflow.open(db_url, procs, create=True)
    flow.cache = None
    try:
        flow.deploy(now=datetime(2026, 9, 1, tzinfo=SH))
        # one instance started before the period: never counted
        flow.start("review", "wang.fang", {}, now=datetime(2026, 9, 30, 23, 0, tzinfo=SH))
        for day, handler, spent, action in CASES:
            opened = datetime(2026, 10, day, 10, 0, tzinfo=SH)
            snap = flow.start("review", "wang.fang", {}, now=opened)
            if spent is not None:
                flow.act(snap.tasks[0].id, action, handler, now=opened + timedelta(hours=spent))
        timekeeper.tick(flow, NOW)  # the real tick fires the deadlines and escalations
    finally:
        flow.store.close()
    return Shell(db_url, procs)


def decided() -> list[tuple[int, str, int, str]]:
    return [c for c in CASES if c[2] is not None]  # type: ignore[misc]


def nearest_rank_p90(values: list[int]) -> int:
    """Independent of the code under test: count until 90% are at or below."""
    need = math.ceil(0.9 * len(values))
    for v in sorted(values):
        if sum(1 for x in values if x <= v) >= need:
            return v
    raise AssertionError("unreachable")


def section(data: dict, prefix: str) -> list[dict]:
    return next(s["rows"] for s in data["sections"] if s["title"].startswith(prefix))


def test_summary_counts_and_times_are_what_happened(filled: Shell) -> None:
    data = filled.js(
        "report summary --from 2026-10-01T00:00+08:00 --to 2026-11-01T00:00+08:00",
        now=NOW.isoformat(),
    )
    outcomes = {r["result"]: r["instances"] for r in section(data, "Instances started")}
    actions = [c[3] for c in CASES]
    assert outcomes == {
        "approved": actions.count("approve"),
        "rejected": actions.count("reject"),
        "active": actions.count(None),
    }
    (on_time,) = section(data, "Tasks decided")
    late = [c for c in decided() if c[2] > 24]  # the deadline is inclusive: 24 h is on time
    assert on_time["decided"] == len(decided())
    assert on_time["late"] == len(late) and on_time["on_time"] == len(decided()) - len(late)
    assert Decimal(on_time["on_time_pct"]) == (
        Decimal(100 * (len(decided()) - len(late))) / len(decided())
    ).quantize(Decimal("0.1"))
    (per_state,) = section(data, "Time from a task opening to its decision, per state")
    spent = [c[2] for c in decided()]
    assert (
        Decimal(per_state["median_h"])
        == Decimal(sorted(spent)[len(spent) // 2 - 1] + sorted(spent)[len(spent) // 2]) / 2
    )
    assert Decimal(per_state["p90_h"]) == nearest_rank_p90(spent)
    handlers = {
        r["handler"]: r
        for r in section(data, "Time from a task opening to its decision, per handler")
    }
    for name in {c[1] for c in decided()}:
        mine = [c[2] for c in decided() if c[1] == name]
        assert handlers[name]["tasks"] == len(mine)
        assert Decimal(handlers[name]["p90_h"]) == nearest_rank_p90(mine)
    overdue = {r["task"]: r for r in section(data, "Overdue now")}
    assert len(overdue) == 2  # the open one of the period, and the one from September
    last = datetime(2026, 10, 31, 10, 0, tzinfo=SH)
    expected = Decimal((NOW - last - timedelta(hours=24)).total_seconds()) / 3600
    assert sorted(Decimal(r["overdue_h"]) for r in overdue.values())[0] == expected
    # the escalations fired when tick ran (November), not in October
    assert section(data, "Escalations fired") == []


def test_escalations_in_the_period_are_counted(filled: Shell) -> None:
    data = filled.js(
        "report escalations --from 2026-11-01T00:00+08:00 --to 2026-12-01T00:00+08:00",
        now=NOW.isoformat(),
    )
    rows = section(data, "Escalations fired")
    # one per open task: they fire at the tick on 3 November
    assert [(r["process"], r["state"], r["escalations"]) for r in rows] == [("review", "check", 2)]


def test_csv_and_html_hold_the_same_rows(filled: Shell) -> None:
    period = "--from 2026-10-01T00:00+08:00 --to 2026-11-01T00:00+08:00"
    data = filled.js(f"report durations {period}", now=NOW.isoformat())
    text = filled.ok(f"report durations {period} -o csv", now=NOW.isoformat()).out
    rows = list(csv.reader(io.StringIO(text)))
    handler_rows = [r for r in rows if r[0].endswith("per handler (hours)")]
    assert len(handler_rows) == len(
        section(data, "Time from a task opening to its decision, per handler")
    )
    html = filled.ok(f"report summary {period} -o html", now=NOW.isoformat()).out
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "<script" not in html
    assert "li.qiang" in html and "review: approved" in html


def test_the_default_period_is_last_month(filled: Shell) -> None:
    data = filled.js("report outcomes", now=NOW.isoformat())
    assert data["from"].startswith("2026-10-01T00:00:00+08:00")
    assert data["to"].startswith("2026-11-01T00:00:00+08:00")


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("report nosuch", "unknown report 'nosuch'"),
        ("report outcomes --from 2026-11-01 --to 2026-10-01", "the period is empty"),
        ("report outcomes --process nosuch", "nosuch"),
        ("report outcomes --out x.txt", "--out takes -o json, csv or html"),
    ],
)
def test_bad_requests_get_one_line(filled: Shell, command: str, reason: str) -> None:
    filled.refused(command, reason, now=NOW.isoformat())
