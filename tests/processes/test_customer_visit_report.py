"""customer_visit_report (第二十四条.4, 第二十六~二十七条): the report is due 2 days after the
visit, with a reminder and the supervisor told when late; follow-ups are tracked."""

from __future__ import annotations

import pytest

from engine.errors import ActionNotAllowed, InvalidData
from engine.org import Actor
from tests.cli.helpers import Shell

from . import Run, at, audit_actions, cli


def visit(visit_date: str = "2026-11-03", now: str = "2026-11-03 17:00") -> Run:
    return Run.start(
        "customer_visit_report",
        "liu.yang",
        at(now),
        customer="天山乳业",
        visit_date=visit_date,
        purpose="新品推广",
    )


def test_due_two_days_after_the_visit_with_reminder_and_escalation() -> None:
    run = visit()  # Tuesday 3 Nov: due at 24:00 on Thursday 5 Nov
    assert (run.state, run.role) == ("reporting", "salesperson")
    assert run.task.due_at == at("2026-11-06 00:00")
    assert [(t.kind, t.due_at) for t in run.pending()] == [
        ("reminder", at("2026-11-05 16:00")),
        ("deadline", at("2026-11-06 00:00")),
        ("escalation", at("2026-11-06 00:00")),
    ]
    fired = run.advance(at("2026-11-06 00:00"))
    events = [(n.event, n.recipients) for out in fired for n in out.notices]
    assert ("reminder", ("role:salesperson",)) in events
    escalated = [r for e, r in events if e == "escalated"]
    assert "role:department_manager" in escalated[0]
    assert run.state == "reporting"  # still to be written, now overdue


def test_a_weekend_deadline_moves_to_monday() -> None:
    run = visit(visit_date="2026-11-05", now="2026-11-05 18:00")  # Thu + 2 = Saturday
    assert run.task.due_at == at("2026-11-10 00:00")


def test_reported_reviewed_and_closed_without_follow_ups() -> None:
    run = visit()
    with pytest.raises(ActionNotAllowed, match="on or after the visit date"):
        run.act(
            "liu.yang", "submit", report="r", satisfaction="satisfied", now=at("2026-11-02 10:00")
        )
    with pytest.raises(InvalidData, match="satisfaction: required"):
        run.act("liu.yang", "submit", report="r", now=at("2026-11-04 10:00"))
    with pytest.raises(ActionNotAllowed, match="submitted by the salesperson who visited"):
        run.act("huang.tao", "submit", report="r", satisfaction="satisfied")
    run.act("liu.yang", "submit", report="客户对新品满意", satisfaction="very_satisfied")
    assert (run.state, run.role, str(run.vars["submitted_on"])) == (
        "supervisor_review",
        "user:xu.ming",  # liu.yang's supervisor, the head of the north branch
        "2026-11-04",
    )
    assert run.pending() == []  # the deadline timers were cancelled
    with pytest.raises(ActionNotAllowed, match="is assigned to xu.ming"):
        run.act("he.jing", "acknowledge")
    run.act("xu.ming", "acknowledge")
    assert (run.status, run.outcome) == ("completed", "reported")


def test_returned_report_and_tracked_follow_ups() -> None:
    run = visit()
    run.act(
        "liu.yang",
        "submit",
        report="r",
        satisfaction="dissatisfied",
        quality_issue="酸奶胀袋",
        promised_follow_ups="一周内回复质量检测结果",
        now=at("2026-11-04 10:00"),
    )
    run.act("xu.ming", "return", comment="补充批次号")
    assert (run.state, run.role, run.pending()) == ("revising", "salesperson", [])
    run.act("liu.yang", "submit", report="批次 20261101", satisfaction="dissatisfied")
    run.act("xu.ming", "acknowledge", manager_note="尽快回复客户")
    assert (run.state, run.role) == ("follow_up", "salesperson")
    with pytest.raises(ActionNotAllowed, match="must first be forwarded through OA"):
        run.act("liu.yang", "done", follow_up_result="已回复")
    run.act("liu.yang", "done", follow_up_result="已回复", quality_forwarded="true")
    assert run.outcome == "reported"
    assert [a[1] for a in audit_actions(run)] == [
        "start",
        "submit",
        "return",
        "submit",
        "acknowledge",
        "route",
        "done",
    ]


def test_a_manager_never_reviews_their_own_report() -> None:
    sam = Actor("sam", frozenset({"salesperson", "department_manager"}))
    run = Run.start(
        "customer_visit_report", sam, at("2026-11-03 17:00"), customer="c", visit_date="2026-11-03"
    )
    run.act(sam, "submit", report="r", satisfaction="satisfied")
    # sam is not in org.yaml, so has no manager there: the fallback role reviews
    assert (run.state, run.role) == ("supervisor_review", "department_manager")
    # in person, or through the delegate who stands in for sam while away
    stand_in = Actor("dora", frozenset(), (("sam", sam.roles),))
    for who in (sam, stand_in):
        for action in ("acknowledge", "return"):
            with pytest.raises(ActionNotAllowed, match="four-eyes rule: sam requested this"):
                run.act(who, action, comment="x")
    run.act("he.jing", "acknowledge")
    assert run.status == "completed"


def test_a_cancelled_visit() -> None:
    run = visit()
    run.act("liu.yang", "cancel_visit", cancel_reason="客户临时出差")
    assert (run.status, run.outcome) == ("completed", "cancelled")


@pytest.fixture
def sh(db_url: str) -> Shell:
    return cli(db_url, "customer_visit_report")


def test_cli_late_report_escalated_then_reported(sh: Shell) -> None:
    inst = sh.js(
        [
            "start",
            "customer_visit_report",
            "--as",
            "liu.yang",
            "--set",
            "customer=某超市",
            "--set",
            "visit_date=2026-11-03",
        ],
        now="2026-11-03T17:00:00+08:00",
    )
    task = inst["tasks"][0]
    assert task["due_at"] == "2026-11-06T00:00:00+08:00"
    assert sh.js("tick", now="2026-11-05T16:00:01+08:00")["fired"] == 1
    assert sh.js("tick", now="2026-11-06T00:00:01+08:00")["fired"] == 2
    late = sh.js("tasks --overdue", now="2026-11-06T09:00:00+08:00")
    assert [t["id"] for t in late] == [task["id"]]
    trail = [e["action"] for e in sh.js(f"audit --instance {inst['id']}")]
    assert trail == ["start", "reminder", "deadline", "escalation"]
    inst = sh.js(
        f"act {task['id']} submit --as liu.yang --set report=ok --set satisfaction=neutral",
        now="2026-11-06T09:00:00+08:00",
    )
    done = sh.js(f"act {inst['tasks'][0]['id']} acknowledge --as xu.ming")
    assert (done["status"], done["outcome"]) == ("completed", "reported")


def test_cli_cancelled(sh: Shell) -> None:
    inst = sh.js(
        "start customer_visit_report --as huang.tao --set customer=x --set visit_date=2026-12-01"
    )
    sh.refused(
        f"act {inst['tasks'][0]['id']} cancel_visit --as liu.yang --set cancel_reason=x",
        "only the salesperson who filed the visit",
    )
    done = sh.js(
        f"act {inst['tasks'][0]['id']} cancel_visit --as huang.tao --set cancel_reason=改期"
    )
    assert done["outcome"] == "cancelled"
