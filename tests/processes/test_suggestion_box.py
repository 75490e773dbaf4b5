"""The suggestion box (篇1 rule 6) through the CLI: opened every 5 days by its keeper,
what was found recorded, complaints found there registered in the complaint process."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.helpers import PROCESSES, Shell

DEPLOYED = "2025-12-31T12:00:00+08:00"


@pytest.fixture
def sh(db_url: str) -> Shell:
    shell = Shell(db_url)
    for name in ("suggestion_box", "complaint"):
        shell.ok(["deploy", str(PROCESSES / f"{name}.yaml")], now=DEPLOYED)
    return shell


def opened_by_tick(sh: Shell, now: str) -> dict[str, Any]:
    report = sh.js("tick", now=now)
    [started] = report["scheduled_starts"]
    return sh.js(f"show {started}", now=now)


def sets(**values: str) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def act(
    sh: Shell, inst: dict[str, Any], action: str, user: str, now: str, **values: str
) -> dict[str, Any]:
    return sh.js(["act", inst["tasks"][0]["id"], action, "--as", user, *sets(**values)], now=now)


def test_opened_every_five_days_from_new_year(sh: Shell) -> None:
    assert sh.js("tick", now="2026-01-01T08:59:00+08:00")["scheduled_starts"] == []
    first = opened_by_tick(sh, "2026-01-01T09:00:10+08:00")
    assert first["requester"] == "zhao.lei" and first["variables"]["opened_on"] == "2026-01-01"
    [task] = first["tasks"]
    # 1 Jan is New Year's Day, 2 Jan a day off, Sun 4 Jan a declared working day
    assert (task["role"], task["due_at"]) == ("suggestion_box_keeper", "2026-01-05T00:00:00+08:00")
    assert sh.js("tick", now="2026-01-06T08:59:59+08:00")["scheduled_starts"] == []
    second = opened_by_tick(sh, "2026-01-06T09:00:00+08:00")
    assert second["variables"]["opened_on"] == "2026-01-06"
    assert second["tasks"][0]["due_at"] == "2026-01-08T00:00:00+08:00"  # Wed 7 Jan
    assert len(sh.js("instances --process suggestion_box")) == 2


def test_an_empty_box(sh: Shell) -> None:
    inst = opened_by_tick(sh, "2026-01-06T09:00:00+08:00")
    sh.refused(
        ["act", inst["tasks"][0]["id"], "recorded", "--as", "wang.fang", "--set", "items_found=0"],
        "needs role suggestion_box_keeper",
        now="2026-01-06T10:00:00+08:00",
    )
    done = act(sh, inst, "recorded", "zhao.lei", "2026-01-06T10:00:00+08:00", items_found="0")
    assert (done["state"], done["status"], done["outcome"]) == ("empty", "completed", "empty")


def test_suggestions_only_are_filed(sh: Shell) -> None:
    inst = opened_by_tick(sh, "2026-01-06T09:00:00+08:00")
    done = act(
        sh,
        inst,
        "recorded",
        "zhao.lei",
        "2026-01-06T10:00:00+08:00",
        items_found="2",
        items="建议延长营业时间; 建议增设缴费机",
    )
    assert (done["status"], done["outcome"]) == ("completed", "filed")


def test_complaints_in_the_box_are_registered_as_complaint_cases(sh: Shell) -> None:
    inst = opened_by_tick(sh, "2026-01-06T09:00:00+08:00")
    too_many = ["act", inst["tasks"][0]["id"], "recorded", "--as", "zhao.lei"]
    too_many += sets(items_found="1", complaint_items="2")
    sh.refused(
        too_many, "complaint_items cannot be more than items_found", now="2026-01-06T10:00:00+08:00"
    )
    inst = act(
        sh,
        inst,
        "recorded",
        "zhao.lei",
        "2026-01-06T10:00:00+08:00",
        items_found="3",
        complaint_items="1",
        items="投诉抄表员态度差; 两条建议",
    )
    assert inst["state"] == "forwarding"
    [task] = inst["tasks"]
    assert (task["role"], task["due_at"]) == ("complaint_clerk", "2026-01-08T00:00:00+08:00")
    found = sets(
        kind="complaint",
        channel="suggestion_box",
        customer="匿名",
        contact="意见箱",
        content="抄表员态度差",
    )
    case = sh.js(
        ["start", "complaint", "--as", "wang.fang", *found], now="2026-01-06T11:00:00+08:00"
    )
    assert case["variables"]["channel"] == "suggestion_box"
    done = act(
        sh, inst, "forwarded", "wang.fang", "2026-01-06T11:05:00+08:00", complaint_refs=case["id"]
    )
    assert (done["status"], done["outcome"]) == ("completed", "forwarded")
    assert done["variables"]["complaint_refs"] == case["id"]
    # what customers wrote is kept from outsiders
    assert sh.js(f"show {inst['id']} --as liu.yang")["variables"]["items"] == "***"


def test_a_box_not_opened_is_escalated_to_the_director(sh: Shell) -> None:
    inst = opened_by_tick(sh, "2026-01-06T09:00:00+08:00")  # due by the end of Wed 7 Jan
    assert "notify chen.jun" not in sh.ok("tick", now="2026-01-07T23:59:00+08:00").err
    late = sh.ok("tick", now="2026-01-08T00:00:01+08:00")
    assert "notify chen.jun" in late.err and "notify zhao.lei" in late.err
    trail = [(e["action"], e["data"].get("level")) for e in sh.js(f"audit --instance {inst['id']}")]
    assert trail[1:] == [("deadline", None), ("escalation", 1)]
    done = act(sh, inst, "recorded", "zhao.lei", "2026-01-08T09:00:00+08:00", items_found="0")
    assert done["outcome"] == "empty"
