"""customer_visit_plan (第二十四条, 第二十五条): month-end plan, manager's review, itinerary
changes reported during the month, and the month-end round started by the schedule."""

from __future__ import annotations

import pytest

from engine.errors import ActionNotAllowed, InvalidData, WorkflowError
from engine.org import Actor
from tests.cli.helpers import Shell

from . import Run, at, cli

NOW = at("2026-10-30 16:00")
ROLES_HE_JING = ("department_manager", "business_manager")


def plan(user: str = "liu.yang", **extra: str) -> Run:
    data = {"plan": "11/3 天山乳业 回访; 11/10 某超市 新品推广", "visits_planned": "2"} | extra
    return Run.start("customer_visit_plan", user, NOW, **data)


@pytest.mark.parametrize(
    ("today", "month"), [("2026-10-30 16:00", "2026-11"), ("2026-12-31 09:00", "2027-01")]
)
def test_the_plan_is_for_next_month_by_default(today: str, month: str) -> None:
    run = Run.start("customer_visit_plan", "liu.yang", at(today), plan="p")
    assert (run.vars["plan_month"], run.state, run.role) == (month, "review", "user:xu.ming")


def test_approved_changes_reported_and_completed() -> None:
    run = plan()
    # liu.yang's manager (head of the north branch) reviews; another branch's manager may not
    with pytest.raises(ActionNotAllowed, match="is assigned to xu.ming; he.jing is not one"):
        run.act("he.jing", "approve", review_note="同意")
    run.act("xu.ming", "approve", review_note="同意")
    assert (run.state, run.role) == ("in_force", "salesperson")
    with pytest.raises(ActionNotAllowed, match="only the salesperson whose plan it is"):
        run.act("huang.tao", "report_change", change_note="x")
    run.act("liu.yang", "report_change", change_note="11/10 改为 11/12，停留4小时")
    assert (run.state, run.role, run.vars["changes"]) == ("change_noted", "user:xu.ming", 1)
    run.act("xu.ming", "noted")
    with pytest.raises(InvalidData, match="visits_made: required"):
        run.act("liu.yang", "complete")
    run.act("liu.yang", "complete", visits_made="2", summary="均已拜访，待跟进1项")
    assert (run.status, run.outcome) == ("completed", "completed")


def test_returned_revised_or_withdrawn() -> None:
    run = plan()
    run.act("xu.ming", "return", comment="补充拜访目的")
    assert (run.state, run.role) == ("drafting", "salesperson")
    with pytest.raises(ActionNotAllowed, match="only the salesperson who filed the plan"):
        run.act("huang.tao", "submit")
    run.act("liu.yang", "submit", plan="补充后的计划")
    run.act("xu.ming", "approve")  # the same manager reviews the revision
    assert run.state == "in_force"
    run = plan()
    run.act("xu.ming", "return", comment="本月不安排拜访")
    run.act("liu.yang", "withdraw", withdraw_reason="调岗")
    assert (run.status, run.outcome) == ("completed", "withdrawn")


def test_a_manager_does_not_approve_their_own_plan() -> None:
    run = plan(user="he.jing")
    # her plan goes to her own manager, the head of the sales company
    assert run.role == "user:zhang.wei"
    for action in ("approve", "return"):
        with pytest.raises(ActionNotAllowed, match="is assigned to zhang.wei"):
            run.act("he.jing", action, comment="x")
    # nor does the delegate who stands in for he.jing while she is away
    stand_in = Actor("dora", frozenset({"salesperson"}), (("he.jing", frozenset(ROLES_HE_JING)),))
    with pytest.raises(ActionNotAllowed, match="is assigned to zhang.wei"):
        run.act(stand_in, "approve")
    assert run.state == "review"
    run.act("zhang.wei", "approve")
    assert run.state == "in_force"


def test_only_sales_staff_file_plans() -> None:
    with pytest.raises(WorkflowError, match="may not start customer_visit_plan"):
        plan(user="deng.ping")


def test_the_month_end_round() -> None:
    run = Run.start("customer_visit_plan", "he.jing", at("2026-11-30 09:00"), scope="round")
    assert (run.state, run.role) == ("round_open", "department_manager")
    assert run.task.due_at == at("2026-12-04 00:00")
    fired = run.advance(at("2026-12-04 00:00"))
    assert [a.action for out in fired for a in out.audit] == ["reminder", "deadline", "escalation"]
    run.act("he.jing", "close_round", round_summary="2/2 份计划已审核")
    assert (run.status, run.outcome) == ("completed", "closed")


@pytest.fixture
def sh(db_url: str) -> Shell:
    return cli(db_url, "customer_visit_plan", deployed_at="2026-11-01T10:00:00+08:00")


def test_cli_schedule_round_and_a_plan(sh: Shell) -> None:
    assert sh.js("tick", now="2026-11-29T09:00:00+08:00")["scheduled_starts"] == []
    [round_id] = sh.js("tick", now="2026-11-30T09:00:05+08:00")["scheduled_starts"]
    assert sh.js(f"show {round_id}")["state"] == "round_open"
    inst = sh.js(
        ["start", "customer_visit_plan", "--as", "huang.tao", "--set", "plan=12/2 某客户"],
        now="2026-11-30T10:00:00+08:00",
    )
    assert inst["variables"]["plan_month"] == "2026-12"
    [review] = inst["tasks"]
    round_task = sh.js(f"show {round_id}")["tasks"][0]["id"]
    mine = {t["id"] for t in sh.js("tasks --as he.jing --process customer_visit_plan")}
    assert mine == {review["id"], round_task}
    inst = sh.js(f"act {review['id']} approve --as he.jing")
    done = sh.js(
        f"act {inst['tasks'][0]['id']} complete --as huang.tao --set visits_made=1 "
        "--set summary=完成"
    )
    assert (done["status"], done["outcome"]) == ("completed", "completed")
    done = sh.js(f"act {round_task} close_round --as he.jing --set round_summary=已收齐")
    assert done["outcome"] == "closed"


def test_cli_withdrawn(sh: Shell) -> None:
    inst = sh.js("start customer_visit_plan --as liu.yang")
    assert inst["state"] == "drafting"
    done = sh.js(f"act {inst['tasks'][0]['id']} withdraw --as liu.yang --set withdraw_reason=休假")
    assert done["outcome"] == "withdrawn"
