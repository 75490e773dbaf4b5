"""Residents' visits at a building site (篇6) through the CLI: registered by the duty
receptionist, answered by the site manager within 3 (calendar) days, escalated if late."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.helpers import PROCESSES, Shell

DEPLOYED = "2026-09-01T09:00:00+08:00"


@pytest.fixture
def sh(db_url: str) -> Shell:
    shell = Shell(db_url)
    shell.ok(["deploy", str(PROCESSES / "residents_visit.yaml")], now=DEPLOYED)
    return shell


def sets(**values: str) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


RESIDENT = sets(
    resident="王大爷",
    contact="13700000000",
    address="3栋2单元",
    topic="noise",
    content="夜间22点后仍在打桩",
)


def visit(sh: Shell, now: str, user: str = "lu.bin") -> dict[str, Any]:
    return sh.js(["start", "residents_visit", "--as", user, *RESIDENT], now=now)


def act(
    sh: Shell, inst: dict[str, Any], action: str, user: str, now: str, **values: str
) -> dict[str, Any]:
    return sh.js(["act", inst["tasks"][0]["id"], action, "--as", user, *sets(**values)], now=now)


@pytest.mark.parametrize(
    ("visited", "due"),
    [
        ("2026-10-13T10:00:00+08:00", "2026-10-17T00:00:00+08:00"),  # Tue -> Fri 16 Oct
        ("2026-10-15T10:00:00+08:00", "2026-10-20T00:00:00+08:00"),  # Thu -> Sun 18 -> Mon 19
        (
            "2026-09-29T10:00:00+08:00",
            "2026-10-09T00:00:00+08:00",
        ),  # Tue -> 2 Oct, holiday -> 8 Oct
        ("2026-10-07T10:00:00+08:00", "2026-10-11T00:00:00+08:00"),  # Wed -> Sat 10 Oct, working
    ],
)
def test_answered_in_time(sh: Shell, visited: str, due: str) -> None:
    inst = visit(sh, visited)
    [task] = inst["tasks"]
    assert (task["role"], task["due_at"]) == ("site_manager", due)
    answer = ["act", task["id"], "answer", "--as", "lu.bin", *sets(reply="x", reply_method="phone")]
    sh.refused(answer, "needs role site_manager", now=visited)
    done = act(
        sh,
        inst,
        "answer",
        "gao.shan",
        visited,
        reply="22点后停止高噪音作业",
        reply_method="in_person",
        measures="调整打桩时间",
    )
    assert (done["state"], done["status"], done["outcome"]) == ("answered", "completed", "answered")
    met = sh.js(f"audit --instance {inst['id']} --action answer")[0]["data"]["deadline_met"]
    assert met is True


def test_referred_elsewhere_with_the_resident_told(sh: Shell) -> None:
    inst = visit(sh, "2026-10-13T10:00:00+08:00")
    refer = ["act", inst["tasks"][0]["id"], "refer", "--as", "gao.shan"]
    refer += sets(reply="x", reply_method="phone")
    sh.refused(refer, "referred_to: required", now="2026-10-13T11:00:00+08:00")
    done = act(
        sh,
        inst,
        "refer",
        "gao.shan",
        "2026-10-13T11:00:00+08:00",
        referred_to="区城管局",
        reply="道路占用由城管局处理",
        reply_method="phone",
    )
    assert (done["status"], done["outcome"]) == ("completed", "referred")


def test_a_late_answer_is_escalated_to_the_general_manager(sh: Shell) -> None:
    inst = visit(sh, "2026-10-15T10:00:00+08:00")  # due by the end of Mon 19 Oct
    reminder = sh.ok("tick", now="2026-10-19T00:00:00+08:00")  # the start of the last day
    assert "notify gao.shan" in reminder.err and "notify lin.feng" not in reminder.err
    late = sh.ok("tick", now="2026-10-20T00:00:01+08:00")
    assert "notify lin.feng" in late.err  # the general manager
    [overdue] = sh.js("tasks --overdue --as gao.shan", now="2026-10-20T08:00:00+08:00")
    assert overdue["instance_id"] == inst["id"]
    act(
        sh,
        inst,
        "answer",
        "gao.shan",
        "2026-10-20T09:00:00+08:00",
        reply="已整改",
        reply_method="phone",
    )
    trail = [
        (e["action"], e["data"].get("deadline_met"))
        for e in sh.js(f"audit --instance {inst['id']}")
    ]
    assert trail == [
        ("start", None),
        ("reminder", None),
        ("deadline", None),
        ("escalation", None),
        ("answer", False),
    ]
    assert sh.js("tasks --overdue", now="2026-10-21T00:00:00+08:00") == []


def test_who_registers_and_who_sees_the_resident(sh: Shell) -> None:
    outsider = ["start", "residents_visit", "--as", "liu.yang", *RESIDENT]
    sh.refused(outsider, "may not start residents_visit", now="2026-10-13T10:00:00+08:00")
    inst = visit(sh, "2026-10-13T10:00:00+08:00", user="gao.shan")  # the site manager on duty
    assert sh.js(f"show {inst['id']} --as liu.yang")["variables"]["resident"] == "***"
    assert sh.js(f"show {inst['id']} --as lu.bin")["variables"]["resident"] == "王大爷"
