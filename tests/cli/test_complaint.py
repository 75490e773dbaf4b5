"""The complaint process end to end through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from .helpers import Shell

RECEIVED = "2026-09-30T10:00:00+08:00"


@pytest.fixture
def sh(db_url: str) -> Shell:
    shell = Shell(db_url)
    shell.ok("deploy")
    return shell


def start_complaint(sh: Shell, kind: str = "complaint") -> dict:
    return sh.js(
        [
            "start",
            "complaint",
            "--as",
            "wang.fang",
            "--set",
            f"kind={kind}",
            "--set",
            "customer=刘女士",
            "--set",
            "contact=13800000000",
            "--set",
            "content=停电三天无人处理",
            "--set",
            "subject=抄表员张某",
        ],
        now=RECEIVED,
    )


def test_complaint_from_start_to_close(sh: Shell) -> None:
    inst = start_complaint(sh)
    assert (inst["process"], inst["state"], inst["status"]) == ("complaint", "accepting", "active")
    assert inst["version"] == 1
    [task] = inst["tasks"]
    assert set(task) >= {
        "id",
        "instance_id",
        "process",
        "name",
        "state",
        "role",
        "status",
        "actions",
        "due_at",
    }
    assert task["role"] == "complaint_clerk" and task["actions"] == ["accept", "not_accepted"]

    mine = sh.js("tasks --as zhao.lei")
    assert [t["id"] for t in mine] == [task["id"]]
    assert sh.js("tasks --as li.qiang") == []

    inst = sh.js(f"act {task['id']} accept --as zhao.lei --set 'first_contact=已电话联系客户'")
    assert inst["state"] == "handling"
    handling = inst["tasks"][0]
    sh.refused(f"act {handling['id']} resolve --as wang.fang", "needs role complaint_handler")
    inst = sh.js(f"act {handling['id']} escalate --as li.qiang --set 'escalation_reason=涉及赔偿'")
    director = inst["tasks"][0]
    assert director["role"] == "service_director"
    inst = sh.js(f"act {director['id']} resolve --as chen.jun --set 'resolution=已恢复供电并致歉'")
    callback = inst["tasks"][0]
    sh.refused(
        f"act {callback['id']} close --as wang.fang --set callback_result=unsatisfied",
        "an unsatisfied customer's case is not closed",
    )
    inst = sh.js(f"act {callback['id']} close --as wang.fang --set callback_result=satisfied")
    assert (inst["state"], inst["status"], inst["outcome"]) == ("closed", "completed", "resolved")
    assert inst["tasks"] == []

    trail = sh.js(f"audit --instance {inst['id']}")
    steps = [(e["actor"], e["action"], e["from_state"], e["to_state"]) for e in trail]
    assert steps == [
        ("wang.fang", "start", None, "accepting"),
        ("zhao.lei", "accept", "accepting", "handling"),
        ("wang.fang", "denied", "handling", "handling"),
        ("li.qiang", "escalate", "handling", "director_handling"),
        ("chen.jun", "resolve", "director_handling", "callback"),
        ("wang.fang", "denied", "callback", "callback"),
        ("wang.fang", "close", "callback", "closed"),
    ]
    assert all(e["at"].endswith("+08:00") for e in trail)
    assert sh.js("audit --actor chen.jun")[0]["action"] == "resolve"
    assert "ok: audit hash chains intact" in sh.ok("audit --verify").out
    listed = sh.js("instances --process complaint --status completed")
    assert [i["id"] for i in listed] == [inst["id"]]


def test_confidential_fields_are_masked_for_outsiders(sh: Shell) -> None:
    inst = start_complaint(sh)
    outsider = sh.js(f"show {inst['id']} --as liu.yang")["variables"]
    assert outsider["customer"] == "***" and outsider["content"] == "***"
    assert outsider["subject"] == "抄表员张某"
    insider = sh.js(f"show {inst['id']} --as li.qiang")["variables"]
    assert insider["customer"] == "刘女士"
    history = sh.js(f"show {inst['id']} --as liu.yang")["history"]
    started = history[0]["data"]["input"]
    assert started["customer"] == "***" and started["subject"] == "抄表员张某"
    assert "刘女士" not in sh.ok(f"show {inst['id']} --as liu.yang -o json").out


def test_second_action_on_a_decided_task_changes_nothing(sh: Shell) -> None:
    inst = start_complaint(sh)
    task = inst["tasks"][0]["id"]
    sh.ok(f"act {task} accept --as zhao.lei --set first_contact=ok")
    before = sh.js(f"show {inst['id']}", now=RECEIVED)
    sh.refused(f"act {task} accept --as wang.fang --set first_contact=again", "already done")
    assert sh.js(f"show {inst['id']}", now=RECEIVED) == before


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("start nosuch --as wang.fang", "unknown process 'nosuch'"),
        ("start complaint --as nobody --set kind=complaint", "unknown user 'nobody'"),
        (
            "start complaint --as wang.fang --set kind=letter --set customer=a --set contact=b "
            "--set content=c",
            "'letter' is not one of complaint, report",
        ),
        ("start complaint --as wang.fang --set kind=complaint", "required by start"),
        (
            "start complaint --as wang.fang --set kind=complaint --set customer=a --set contact=b "
            "--set content=c --set colour=red",
            "colour: unknown variable",
        ),
        ("act nosuch-1 accept --as zhao.lei", "unknown task 'nosuch-1'"),
        ("show nosuch", "unknown instance 'nosuch'"),
        ("tasks --role nosuch", "unknown role 'nosuch'"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(sh: Shell, command: str, message: str) -> None:
    sh.refused(command, message)


def test_bad_action_and_bad_user_leave_the_database_as_it_was(sh: Shell) -> None:
    inst = start_complaint(sh)
    task = inst["tasks"][0]["id"]
    before = sh.js(f"show {inst['id']}", now=RECEIVED)
    sh.refused(f"act {task} explode --as zhao.lei", "not an action of this task")
    sh.refused(f"act {task} accept --as ghost", "unknown user 'ghost'")
    sh.refused(
        f"act {task} accept --as zhao.lei --set first_contact=x --set kind=report",
        "kind: cannot be set",
    )
    after = sh.js(f"show {inst['id']}", now=RECEIVED)
    assert after["variables"] == before["variables"] and after["tasks"] == before["tasks"]
    assert after["state"] == before["state"]


def test_usage_errors_exit_2(sh: Shell) -> None:
    assert sh("start").code == 2
    assert sh("act onlyone").code == 2
    assert sh("frobnicate").code == 2


def test_redeploying_identical_content_is_a_no_op(sh: Shell) -> None:
    rows = sh.js("deploy")
    assert {r["status"] for r in rows} == {"unchanged"}
    assert [r["version"] for r in rows if r["process"] == "complaint"] == [1]


def test_graph_is_mermaid(sh: Shell) -> None:
    out = sh.ok("graph complaint").out
    assert out.startswith("stateDiagram-v2")
    assert "accepting --> handling: accept (complaint_clerk)" in out
    assert "closed --> [*]" in out
    assert "note left of accepting: instance deadline" in out


@pytest.mark.parametrize(
    ("kind", "due"),
    [("complaint", "2026-10-11T00:00:00+08:00"), ("report", "2026-10-14T00:00:00+08:00")],
)
def test_worked_example_deadlines(sh: Shell, kind: str, due: str) -> None:
    """Received 2026-09-30 10:00: complaints by the end of Sat 10 Oct (a working day),
    reports by the end of Tue 13 Oct; 1-7 Oct are the National Day holiday."""
    inst = start_complaint(sh, kind)
    assert inst["tasks"][0]["due_at"] == due
    shown = sh.js(f"show {inst['id']}", now=RECEIVED)
    assert shown["deadlines"]["instance_deadline"]["due_at"] == due


def test_escalation_after_downtime_fires_once(sh: Shell) -> None:
    inst = start_complaint(sh)
    first = sh.js("tick", now="2026-10-20T09:00+08:00")
    assert first["fired"] >= 2 and first["failed"] == 0
    assert sh.js("tick", now="2026-10-20T09:00+08:00")["fired"] == 0
    assert sh.js("tick", now="2026-10-21T09:00+08:00")["fired"] == 0
    trail = sh.js(f"audit --instance {inst['id']}")
    levels = [e["data"]["level"] for e in trail if e["action"] == "escalation"]
    assert levels == sorted(set(levels)) and levels, trail
    assert all(e["data"]["late_by_s"] > 0 for e in trail if e["action"] == "escalation")
    assert sh.js(f"show {inst['id']} --as chen.jun", now="2026-10-20T09:00+08:00")["tasks"]


@pytest.mark.parametrize(
    ("kind", "due"),
    [("complaint", "2026-02-26T00:00:00+08:00"), ("report", "2026-02-28T00:00:00+08:00")],
)
def test_spring_festival_deadlines(sh: Shell, kind: str, due: str) -> None:
    """Received Fri 13 Feb 2026: Sat 14 Feb is a working day (调休), 15-23 Feb are the
    Spring Festival holiday, so 3 working days end with Wed 25 Feb and 5 with Fri 27 Feb."""
    inst = sh.js(
        [
            "start", "complaint", "--as", "wang.fang", "--set", f"kind={kind}",
            "--set", "customer=c", "--set", "contact=1", "--set", "content=x",
        ],
        now="2026-02-13T16:00+08:00",
    )  # fmt: skip
    assert inst["tasks"][0]["due_at"] == due


def test_out_of_range_inputs_are_refused_not_crashed(sh: Shell) -> None:
    assert sh("tasks", now="9999-12-30T10:00+08:00").code == 2
    bad_db = Shell("foo://bar")
    bad_db.refused("tasks", "unsupported database URL")
