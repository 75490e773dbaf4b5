"""lost_customer_callback (篇4): every lost customer is called back; revivable ones go back to
sales; complaints are filed; the monthly analysis on the 30th computes the penalties."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.errors import ActionNotAllowed, InvalidData
from engine.operations import Rollback
from engine.runtime import fire
from tests.cli.helpers import Shell

from . import PROCESSES, Run, at, cli, org

D = Decimal
NOW = at("2026-11-02 10:00")  # a Monday


CUSTOMER = {
    "customer": "王先生",
    "contact": "13900000000",
    "salesperson": "liu.yang",
    "interest": "SUV",
    "lost_reason_recorded": "价格",
}


def lost(**extra: str) -> Run:
    return Run.start("lost_customer_callback", "liu.yang", NOW, **(CUSTOMER | extra))


def test_callback_due_in_three_working_days_then_escalated_twice() -> None:
    run = lost()
    assert (run.state, run.role) == ("callback", "callback_agent")
    assert run.task.due_at == at("2026-11-06 00:00")  # close of Thursday 5 Nov
    fired = run.advance(at("2026-11-11 00:00"))
    escalations = [n.recipients for out in fired for n in out.notices if n.event == "escalated"]
    assert "role:showroom_manager" in escalations[0] and "role:sales_vp" in escalations[1]
    assert run.state == "callback"


def test_the_agent_is_reminded_at_nine_the_working_day_before() -> None:
    run = lost()  # Mon 2 Nov 10:00: due at the close of Thu 5 Nov
    [reminder] = run.pending("reminder")
    assert reminder.due_at == at("2026-11-04 09:00")  # Wed, not midnight
    assert run.advance(at("2026-11-04 08:59")) == []
    [fired] = run.advance(at("2026-11-04 09:00"))
    assert [(n.event, n.recipients) for n in fired.notices] == [
        ("reminder", ("role:callback_agent",))
    ]
    friday = Run.start("lost_customer_callback", "liu.yang", at("2026-11-06 10:00"), **CUSTOMER)
    # 9, 10, 11 Nov: due at the close of Wed 11 Nov; the reminder skips the weekend
    assert friday.task.due_at == at("2026-11-12 00:00")
    assert [t.due_at for t in friday.pending("reminder")] == [at("2026-11-10 09:00")]


def test_not_buying_is_closed() -> None:
    run = lost()
    with pytest.raises(InvalidData, match="feedback: required"):
        run.act("jiang.na", "record", callback_result="not_buying")
    run.act(
        "jiang.na",
        "record",
        callback_result="bought_elsewhere",
        feedback="已购他牌",
        lost_reason_actual="对方优惠更多",
        info_error="true",
        info_error_note="电话少一位",
    )
    assert (run.status, run.outcome) == ("completed", "lost_confirmed")
    assert run.vars["info_error"] is True


def test_revivable_goes_back_to_its_salesperson() -> None:
    run = lost()
    run.act("jiang.na", "record", callback_result="revivable", feedback="还在比较")
    assert (run.state, run.role) == ("back_to_sales", "salesperson")
    with pytest.raises(ActionNotAllowed, match="the customer's own salesperson"):
        run.act("huang.tao", "revived", revival_note="x")
    run.act("liu.yang", "revived", revival_note="已到店订车")
    assert run.outcome == "revived"


def test_revivable_can_still_be_confirmed_lost() -> None:
    run = lost()
    run.act("jiang.na", "record", callback_result="revivable", feedback="再考虑")
    run.act("liu.yang", "still_lost", revival_note="客户已放弃购车")
    assert run.outcome == "lost_confirmed"


def test_a_complaint_starts_a_complaint_case_and_the_callback_goes_on() -> None:
    run = lost()
    run.act(
        "jiang.na",
        "record",
        callback_result="revivable",
        feedback="销售态度差",
        complaint="销售顾问未回电话",
    )
    assert (run.state, run.role) == ("back_to_sales", "salesperson")  # as without one
    [child] = run.last.spawns
    assert (child.process, child.requester, child.wait, child.on_parent_end) == (
        "complaint",
        "jiang.na",
        False,
        "keep",
    )
    assert child.input == {
        "kind": "complaint",
        "channel": "phone",
        "customer": "王先生",
        "contact": "13900000000",
        "content": "战败回访发现: 销售顾问未回电话",
    }
    assert child.parent == {
        "id": run.snap.id,
        "process": "lost_customer_callback",
        "state": "complaint_filing",
    }
    run = lost()
    run.act("jiang.na", "record", callback_result="not_buying", feedback="f", complaint="c")
    assert run.outcome == "lost_confirmed" and len(run.last.spawns) == 1
    run = lost()
    run.act("jiang.na", "record", callback_result="not_buying", feedback="f")
    assert run.last.spawns == ()  # no complaint, no case


def test_a_callback_sent_back_and_recorded_again_files_its_complaint_once() -> None:
    """The salesperson sends the callback back to the agent (退回): the callback passes
    complaint_filing again with the same complaint, which already has its case; a second
    case for one finding would be handled twice. A new complaint gets its own case."""
    run = lost()
    run.act("jiang.na", "record", callback_result="revivable", feedback="f", complaint="未回电话")
    assert run.state == "back_to_sales" and len(run.spawned) == 1
    stored = run.stored
    back = Rollback(stored.snap.tasks[0].id, "callback", "客户说已联系过, 请再核实")
    stored.apply(
        fire(stored.proc, stored.snap, back, org().actor("liu.yang"), {}, run.now,
             registers=stored.reader()),
        run.now,
    )  # fmt: skip
    assert run.state == "callback"
    run.act("jiang.na", "record", callback_result="revivable", feedback="再核实")
    assert run.state == "back_to_sales"
    assert [c["id"] for c in run.snap.meta["children"]] == [f"{run.snap.id}.1"]
    assert run.last.spawns == ()
    back = Rollback(stored.snap.tasks[0].id, "callback", "再回访")
    stored.apply(
        fire(stored.proc, stored.snap, back, org().actor("liu.yang"), {}, run.now,
             registers=stored.reader()),
        run.now,
    )  # fmt: skip
    run.act("jiang.na", "record", callback_result="revivable", feedback="f", complaint="试驾差")
    assert len(run.snap.meta["children"]) == 2  # a new finding: a case of its own


def test_three_unanswered_calls_end_unreachable() -> None:
    run = lost()
    run.act("jiang.na", "unreachable", comment="无人接听")
    run.act("jiang.na", "unreachable", comment="关机")
    assert (run.state, run.vars["attempts"]) == ("callback", 2)
    run.act("jiang.na", "unreachable", comment="空号")
    assert (run.outcome, run.vars["attempts"]) == ("unreachable", 3)


def test_missing_customer_data_is_registered_first() -> None:
    run = Run.start("lost_customer_callback", "yu.hang", NOW, customer="李女士")
    assert (run.state, run.role) == ("registration", "callback_agent")
    run.act("jiang.na", "register", contact="13800000000")
    assert run.state == "callback"


def test_monthly_analysis_and_penalties() -> None:
    run = Run.start("lost_customer_callback", "yu.hang", at("2026-11-30 09:00"), scope="analysis")
    assert (run.state, run.role, run.vars["month"]) == ("analysis", "showroom_manager", "2026-11")
    with pytest.raises(ActionNotAllowed, match="more customers called back than were lost"):
        run.act(
            "yu.hang",
            "submit",
            lost_count="10",
            called_back="11",
            repeated_errors="0",
            analysis="a",
        )
    run.act(
        "yu.hang",
        "submit",
        lost_count="40",
        called_back="37",
        repeated_errors="2",
        analysis="价格是主要原因",
    )
    v = run.vars
    assert (v["missed_callbacks"], v["penalty_sales_vp"], v["penalty_showroom_manager"]) == (
        3,
        D(60),
        D(30),
    )
    assert v["penalty_callback_agent"] == D(60)
    run.act("zhang.wei", "return", comment="补充竞品分析")
    run.act(
        "yu.hang", "submit", lost_count="40", called_back="40", repeated_errors="0", analysis="补充"
    )
    assert run.vars["penalty_sales_vp"] == D(0)
    run.act("zhang.wei", "acknowledge", vp_note="调整价格策略")
    assert (run.status, run.outcome) == ("completed", "reported")


@pytest.fixture
def sh(db_url: str) -> Shell:
    return cli(db_url, "lost_customer_callback", deployed_at="2026-01-01T00:00:00+08:00")


def test_cli_monthly_analysis_schedule(sh: Shell) -> None:
    def starts(now: str) -> list[str]:
        return sh.js("tick", now=now)["scheduled_starts"]

    [january] = starts("2026-01-30T09:00:01+08:00")
    inst = sh.js(f"show {january}")
    assert (inst["state"], inst["requester"], inst["variables"]["month"]) == (
        "analysis",
        "yu.hang",
        "2026-01",
    )
    assert starts("2026-01-31T09:00:00+08:00") == []
    assert starts("2026-02-27T09:00:01+08:00") == []
    [february] = starts("2026-02-28T09:00:01+08:00")  # no 30 February: its last day instead
    assert sh.js(f"show {february}")["variables"]["month"] == "2026-02"
    assert len(starts("2026-03-30T09:00:01+08:00")) == 1


def test_cli_callback_to_revival_and_unreachable(sh: Shell) -> None:
    inst = sh.js(
        "start lost_customer_callback --as liu.yang --set customer=王先生 "
        "--set contact=139 --set salesperson=liu.yang"
    )
    task = inst["tasks"][0]["id"]
    inst = sh.js(
        f"act {task} record --as jiang.na --set callback_result=revivable --set feedback=考虑中"
    )
    assert inst["children"] == []  # no complaint: nothing started
    done = sh.js(f"act {inst['tasks'][0]['id']} revived --as liu.yang --set revival_note=已订车")
    assert done["outcome"] == "revived"

    inst = sh.js("start lost_customer_callback --as jiang.na --set customer=赵先生 --set contact=1")
    for _ in range(3):
        inst = sh.js(
            ["act", inst["tasks"][0]["id"], "unreachable", "--as", "jiang.na", "--comment", "未接"]
        )
    assert (inst["status"], inst["outcome"]) == ("completed", "unreachable")


def test_cli_a_complaint_found_on_the_callback_becomes_a_complaint_case(sh: Shell) -> None:
    """篇4 五.4: the callback starts the complaint itself; each shows the other; closing
    the complaint leaves the callback where it is."""
    sh.ok(["deploy", str(PROCESSES / "complaint.yaml")])
    inst = sh.js(
        "start lost_customer_callback --as liu.yang --set customer=王先生 "
        "--set contact=13900000000 --set salesperson=liu.yang"
    )
    callback = inst["id"]
    inst = sh.js(
        f"act {inst['tasks'][0]['id']} record --as jiang.na --set callback_result=revivable "
        "--set feedback=考虑中 --set complaint=试驾体验差"
    )
    assert (inst["state"], inst["status"]) == ("back_to_sales", "active")
    [child] = inst["children"]
    assert (child["process"], child["state"], child["status"]) == (
        "complaint",
        "complaint_filing",
        "active",
    )
    case = sh.js(f"show {child['id']}")
    assert (case["process"], case["state"], case["requester"]) == (
        "complaint",
        "accepting",
        "jiang.na",
    )
    assert case["variables"]["customer"] == "王先生"
    assert case["variables"]["content"] == "战败回访发现: 试驾体验差"
    assert case["variables"]["channel"] == "phone"
    assert case["parent"] == {
        "id": callback,
        "process": "lost_customer_callback",
        "state": "complaint_filing",
    }
    listed = sh.js(f"instances --parent {callback}")
    assert [r["id"] for r in listed] == [child["id"]]
    text = sh.ok(f"show {callback}").out
    assert "children:" in text and child["id"] in text
    assert f"parent   {callback}" in sh.ok(f"show {child['id']}").out
    # the complaint is closed (not ours to handle): the callback stays with sales
    closed = sh.js(
        [
            "act",
            case["tasks"][0]["id"],
            "not_accepted",
            "--as",
            "wang.fang",
            "--set",
            "not_accepted_reason=属厂家责任",
            "--comment",
            "转厂家",
        ]
    )
    assert closed["status"] == "completed"
    after = sh.js(f"show {callback}")
    assert (after["state"], after["status"], len(after["tasks"])) == (
        "back_to_sales",
        "active",
        1,
    )
    assert after["children"][0]["status"] == "completed"
    assert after["children"][0]["outcome"] == closed["outcome"]
