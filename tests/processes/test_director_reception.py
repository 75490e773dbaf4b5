"""The director's Monday reception day (篇1 rule 5) through the CLI: the schedule opens one
task every Monday at 08:00, due by the end of that day, and ``tick`` never opens two."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.helpers import PROCESSES, Shell

DEPLOYED = "2026-10-01T12:00:00+08:00"  # a Thursday


@pytest.fixture
def sh(db_url: str) -> Shell:
    shell = Shell(db_url)
    shell.ok(["deploy", str(PROCESSES / "director_reception.yaml")], now=DEPLOYED)
    return shell


def receptions(sh: Shell, status: str | None = None) -> list[dict[str, Any]]:
    extra = f" --status {status}" if status else ""
    return sh.js(f"instances --process director_reception{extra}")


def opened_by_tick(sh: Shell, now: str) -> dict[str, Any]:
    report = sh.js("tick", now=now)
    [started] = report["scheduled_starts"]
    return sh.js(f"show {started}", now=now)


def test_one_reception_task_every_monday_due_that_day(sh: Shell) -> None:
    assert sh.js("tick", now="2026-10-05T07:59:00+08:00")["scheduled_starts"] == []
    inst = opened_by_tick(sh, "2026-10-05T08:00:30+08:00")
    assert (inst["requester"], inst["variables"]["reception_day"]) == ("chen.jun", "2026-10-05")
    [task] = inst["tasks"]
    assert (task["role"], task["due_at"]) == ("service_director", "2026-10-06T00:00:00+08:00")
    assert task["actions"] == ["held", "no_visitors", "not_held"]
    start = sh.js(f"audit --instance {inst['id']} --action start")[0]
    assert start["data"]["planned_at"] == "2026-10-05T08:00:00+08:00"
    assert start["at"] == "2026-10-05T08:00:00+08:00"
    # the same slot never opens a second task, however often tick runs
    assert sh.js("tick", now="2026-10-05T08:01:00+08:00")["scheduled_starts"] == []
    assert sh.js("tick", now="2026-10-11T23:00:00+08:00")["scheduled_starts"] == []
    assert len(receptions(sh)) == 1


def test_a_holiday_monday_is_recorded_as_not_held(sh: Shell) -> None:
    inst = opened_by_tick(sh, "2026-10-05T08:00:00+08:00")  # 国庆节（补假）
    task = inst["tasks"][0]["id"]
    sh.refused(
        f"act {task} not_held --as chen.jun --set not_held_reason=国庆假期",
        "a comment is required",
        now="2026-10-05T09:00:00+08:00",
    )
    done = sh.js(
        f"act {task} not_held --as chen.jun --set not_held_reason=国庆假期 --comment 法定节假日",
        now="2026-10-05T09:00:00+08:00",
    )
    assert (done["status"], done["outcome"]) == ("completed", "not_held")


def test_held_with_visitors_recorded_and_visitors_kept_confidential(sh: Shell) -> None:
    inst = opened_by_tick(sh, "2026-10-12T08:00:00+08:00")
    task = inst["tasks"][0]["id"]
    sh.refused(
        f"act {task} held --as li.qiang --set visitors_count=1",
        "needs role service_director",
        now="2026-10-12T17:00:00+08:00",
    )
    sh.refused(
        f"act {task} held --as chen.jun --set visitors_count=2",
        "issues: required",
        now="2026-10-12T17:00:00+08:00",
    )
    record = {
        "visitors_count": "2",
        "visitors": "刘女士 13800000000; 王先生 13900000000",
        "issues": "电费异常; 电压不稳，已登记投诉",
        "registered_cases": "c0ffee000001",
    }
    held = ["act", task, "held", "--as", "chen.jun"]
    held += [arg for key, value in record.items() for arg in ("--set", f"{key}={value}")]
    done = sh.js(held, now="2026-10-12T17:00:00+08:00")
    assert (done["status"], done["outcome"]) == ("completed", "held")
    assert sh.js(f"show {inst['id']} --as liu.yang")["variables"]["visitors"] == "***"
    assert sh.js(f"show {inst['id']} --as wang.fang")["variables"]["visitors"].startswith("刘女士")


def test_nobody_came(sh: Shell) -> None:
    inst = opened_by_tick(sh, "2026-10-19T08:00:00+08:00")
    done = sh.js(
        f"act {inst['tasks'][0]['id']} no_visitors --as chen.jun", now="2026-10-19T17:30:00+08:00"
    )
    assert (done["outcome"], done["variables"]["visitors_count"]) == ("held", 0)


def test_reminded_at_six_then_overdue_after_midnight(sh: Shell) -> None:
    inst = opened_by_tick(sh, "2026-10-12T08:00:00+08:00")
    assert "notify chen.jun" in sh.ok("tick", now="2026-10-12T18:00:00+08:00").err
    assert sh.js("tasks --overdue", now="2026-10-12T23:59:59+08:00") == []
    sh.ok("tick", now="2026-10-13T00:00:00+08:00")
    [late] = sh.js("tasks --overdue --as chen.jun", now="2026-10-13T08:00:00+08:00")
    assert late["instance_id"] == inst["id"]
    trail = [
        (e["action"], e["data"].get("planned_at")) for e in sh.js(f"audit --instance {inst['id']}")
    ]
    assert trail[1:] == [
        ("reminder", "2026-10-12T18:00:00+08:00"),
        ("deadline", "2026-10-13T00:00:00+08:00"),
    ]


def test_missed_mondays_coalesce_into_the_latest_one(sh: Shell) -> None:
    """Nothing ran for three weeks: one tick opens the latest Monday's reception only."""
    inst = opened_by_tick(sh, "2026-10-27T10:00:00+08:00")
    assert inst["variables"]["reception_day"] == "2026-10-26"
    assert inst["tasks"][0]["due_at"] == "2026-10-27T00:00:00+08:00"
    assert len(receptions(sh)) == 1


def test_the_director_may_open_an_extra_reception_day_by_hand(sh: Shell) -> None:
    sh.refused(
        "start director_reception --as wang.fang",
        "may not start director_reception",
        now="2026-10-14T09:00:00+08:00",
    )
    inst = sh.js("start director_reception --as chen.jun", now="2026-10-14T09:00:00+08:00")
    assert inst["variables"]["reception_day"] == "2026-10-14"
    assert inst["tasks"][0]["due_at"] == "2026-10-15T00:00:00+08:00"
