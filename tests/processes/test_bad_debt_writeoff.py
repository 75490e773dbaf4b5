"""bad_debt_writeoff (第二十一条): 会签 review, GM approval, booking, then the bad-debt register
with quarterly follow-ups, internal-audit spot checks, recoveries and closure."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.errors import ActionNotAllowed, InvalidData, WorkflowError
from engine.org import Actor
from engine.registers import MemoryRegisters
from tests.cli.helpers import Shell

from . import Run, at, audit_actions, cli

D = Decimal
NOW = at("2026-12-01 10:00")


def application(
    user: str | Actor = "liu.yang", amount: str = "80000", books: MemoryRegisters | None = None
) -> Run:
    return Run.start(
        "bad_debt_writeoff",
        user,
        NOW,
        registers=books if books is not None else MemoryRegisters(),
        customer="某经销商",
        amount=amount,
        reason="客户破产清算",
        evidence="(2026)新01破5号裁定书",
        reference="rc-42",
    )


VOUCHER = "记-2026-12-015"


def booked(
    user: str | Actor = "liu.yang", amount: str = "80000", books: MemoryRegisters | None = None
) -> Run:
    run = application(user, amount, books)
    run.act("qian.hua", "approve").act("guo.yan", "approve")
    run.act("lin.feng", "approve")
    run.act("deng.ping", "book", voucher_no=VOUCHER)
    assert (run.state, run.role) == ("audit_spot_check", "internal_audit")
    run.act("cao.yu", "checked", audit_finding="confirmed", audit_note="客户确认仍在催收")
    assert (run.state, run.role) == ("register", "branch_manager")
    return run


def test_both_reviewers_then_the_gm_then_finance() -> None:
    run = application()
    assert set(run.task.pending_roles) == {"sales_hq_head", "cfo"} and run.task.mode == "all"
    run.act("guo.yan", "approve")
    assert run.state == "review" and run.task.pending_roles == ("sales_hq_head",)
    run.act("qian.hua", "approve", review_note="同意")
    assert (run.state, run.role) == ("gm_approval", "general_manager")
    run.act("lin.feng", "approve")
    assert (run.state, run.role) == ("booking", "finance")
    with pytest.raises(InvalidData, match="voucher_no: required"):
        run.act("deng.ping", "book")
    run.act("deng.ping", "book", voucher_no="记-1")
    assert run.vars["written_off_on"] == NOW.date()
    assert run.state == "audit_spot_check"


@pytest.mark.parametrize("who", ["qian.hua", "guo.yan"])
def test_either_reviewer_rejects(who: str) -> None:
    run = application()
    with pytest.raises(ActionNotAllowed, match="a comment is required"):
        run.act(who, "reject")
    run.act(who, "reject", comment="证据不足，继续催收")
    assert (run.status, run.outcome) == ("completed", "rejected")


def test_the_gm_rejects() -> None:
    run = application()
    run.act("qian.hua", "approve").act("guo.yan", "approve")
    run.act("lin.feng", "reject", comment="尚有可执行财产")
    assert run.outcome == "rejected"


def test_the_applicant_can_never_approve() -> None:
    # an applicant who also holds the approving roles is refused by four-eyes at each step
    applicant = Actor("zhou.x", frozenset({"branch_manager", "sales_hq_head", "general_manager"}))
    mine = Run.start(
        "bad_debt_writeoff", applicant, NOW, customer="c", amount="1", reason="r", evidence="e"
    )
    with pytest.raises(ActionNotAllowed, match="four-eyes rule: zhou.x requested this"):
        mine.act(applicant, "approve")
    mine.act("qian.hua", "approve").act("guo.yan", "approve")
    with pytest.raises(ActionNotAllowed, match="four-eyes rule: zhou.x requested this"):
        mine.act(applicant, "approve")


def test_the_applicant_may_not_close_the_register_entry_even_through_a_delegate() -> None:
    applicant = Actor("zhou.x", frozenset({"branch_manager", "sales_hq_head"}))
    run = booked(applicant)
    run.act(applicant, "propose_closure", closure_reason="客户已注销")
    stand_in = Actor("dora", frozenset(), (("zhou.x", applicant.roles),))
    for who in (applicant, stand_in):
        with pytest.raises(ActionNotAllowed, match="four-eyes rule: zhou.x requested this"):
            run.act(who, "approve")
    # the heads who reviewed the write-off approve its closure again
    run.act("qian.hua", "approve").act("guo.yan", "approve")
    assert (run.status, run.outcome) == ("completed", "closed")


def test_only_branch_or_salesperson_apply() -> None:
    with pytest.raises(WorkflowError, match="may not start bad_debt_writeoff"):
        application(user="deng.ping")


def test_follow_ups_loop_and_every_fourth_goes_to_audit() -> None:
    run = booked()
    for n in range(1, 4):
        run.act("xu.ming", "follow_up", follow_up_note=f"第{n}次电话催收")
        assert (run.state, run.vars["follow_ups"]) == ("register", n)
    run.act("xu.ming", "follow_up", follow_up_note="第4次")
    assert (run.state, run.vars["follow_ups"]) == ("audit_spot_check", 4)
    run.act("cao.yu", "checked", audit_finding="irregular", audit_note="客户称未被催收")
    assert (run.state, run.vars["audits"]) == ("register", 2)
    run.act("xu.ming", "request_audit")
    assert run.state == "audit_spot_check"


def test_a_late_follow_up_is_escalated_then_audited() -> None:
    run = booked()
    assert run.task.due_at == at("2027-03-02 00:00")  # 90 days, moved off a weekend if needed
    fired = run.advance(at("2027-03-02 00:00"))
    escalated = [n for out in fired for n in out.notices if n.event == "escalated"]
    assert {"role:sales_hq_head", "role:internal_audit"} <= set(escalated[0].recipients)
    assert run.state == "register"
    run.advance(at("2027-04-30 00:00"))
    assert (run.state, run.role) == ("audit_spot_check", "internal_audit")


def test_recovered_in_part_then_in_full() -> None:
    run = booked()
    with pytest.raises(ActionNotAllowed, match="more than the amount still in the register"):
        run.act("xu.ming", "recovered", recovered_amount="80000.01")
    run.act("xu.ming", "recovered", recovered_amount="30000")
    assert (run.state, run.role) == ("recovery_booking", "finance")
    run.act("deng.ping", "not_received", comment="未到账")
    assert (run.state, run.vars["remaining"]) == ("register", D(80000))
    run.act("xu.ming", "recovered", recovered_amount="30000")
    run.act("deng.ping", "book", recovery_voucher="收-1")
    assert (run.state, run.vars["recovered_total"], run.vars["remaining"]) == (
        "register",
        D(30000),
        D(50000),
    )
    run.act("xu.ming", "recovered", recovered_amount="50000")
    run.act("feng.xue", "book", recovery_voucher="收-2")
    assert (run.status, run.outcome, run.vars["remaining"]) == ("completed", "recovered", D(0))


def test_closing_the_register_needs_both_heads() -> None:
    run = booked()
    run.act("xu.ming", "propose_closure", closure_reason="客户已注销")
    assert set(run.task.pending_roles) == {"sales_hq_head", "cfo"}
    run.act("qian.hua", "reject", comment="继续追偿股东")
    assert run.state == "register"
    run.act("xu.ming", "propose_closure", closure_reason="股东亦无财产")
    run.act("qian.hua", "approve").act("guo.yan", "approve")
    assert (run.status, run.outcome) == ("completed", "closed")
    assert audit_actions(run)[-2:] == [
        ("qian.hua", "approve", "closure_review", "closure_review"),
        ("guo.yan", "approve", "closure_review", "closed"),
    ]


# --------------------------------------------------------------------------- the register


def entry(books: MemoryRegisters) -> dict:
    row = books.reader().get("bad_debts", VOUCHER)
    assert row is not None
    return dict(row.values)


def test_booking_enters_the_write_off_in_the_bad_debt_register() -> None:
    books = MemoryRegisters()
    run = booked(books=books)
    assert entry(books) == {
        "customer": "某经销商",
        "branch": None,
        "reference": "rc-42",
        "amount": "80000",
        "booked_on": "2026-12-01",
        "recovered_total": "0",
        "remaining": "80000",
        "status": "collecting",
        "follow_ups": 0,
    }
    booking = [a for out in run.outcomes for a in out.audit if a.action == "book"][0]
    assert booking.data["register_writes"][0]["key"] == VOUCHER


def test_booking_takes_the_amount_off_the_receivables_ledger() -> None:
    books = MemoryRegisters()
    books.write("receivables", "某经销商", {"balance": "100000"}, NOW)
    booked(books=books)
    row = books.reader().get("receivables", "某经销商")
    assert row is not None and (row.values["balance"], row.values["updated_on"]) == (
        "20000",
        "2026-12-01",
    )


def test_the_same_voucher_cannot_be_booked_twice() -> None:
    books = MemoryRegisters()
    booked(books=books)
    run = application(books=books)
    run.act("qian.hua", "approve").act("guo.yan", "approve").act("lin.feng", "approve")
    with pytest.raises(ActionNotAllowed, match="already in the bad-debt register"):
        run.act("deng.ping", "book", voucher_no=VOUCHER)
    run.act("deng.ping", "book", voucher_no="记-2026-12-016")
    assert books.reader().keys("bad_debts") == [VOUCHER, "记-2026-12-016"]


def test_follow_ups_recoveries_and_closure_update_the_register() -> None:
    books = MemoryRegisters()
    run = booked(books=books)
    run.act("xu.ming", "follow_up", follow_up_note="电话催收", now=at("2027-01-05 10:00"))
    assert entry(books)["follow_ups"] == 1
    assert entry(books)["last_follow_up_on"] == "2027-01-05"
    assert entry(books)["last_follow_up_note"] == "电话催收"
    run.act("xu.ming", "recovered", recovered_amount="30000")
    run.act("deng.ping", "book", recovery_voucher="收-1")
    assert (entry(books)["recovered_total"], entry(books)["remaining"]) == ("30000", "50000")
    assert entry(books)["status"] == "collecting"
    run.act("xu.ming", "propose_closure", closure_reason="客户已注销")
    run.act("qian.hua", "approve").act("guo.yan", "approve")
    assert (run.outcome, entry(books)["status"]) == ("closed", "closed")


def test_full_recovery_marks_the_entry_recovered() -> None:
    books = MemoryRegisters()
    run = booked(books=books)
    run.act("xu.ming", "recovered", recovered_amount="80000")
    run.act("deng.ping", "book", recovery_voucher="收-1")
    assert (run.outcome, entry(books)["status"], entry(books)["remaining"]) == (
        "recovered",
        "recovered",
        "0",
    )


def test_the_follow_up_works_from_the_registers_figures() -> None:
    books = MemoryRegisters()
    run = booked(books=books)
    # a recovery booked in the register by another write-off step (or a corrected import):
    # the next return to the follow-up reads it
    books.write("bad_debts", VOUCHER, {"recovered_total": "20000", "remaining": "60000"}, run.now)
    run.act("xu.ming", "follow_up", follow_up_note="上门催收")
    assert (run.state, run.vars["remaining"], run.vars["recovered_total"]) == (
        "register",
        D(60000),
        D(20000),
    )
    with pytest.raises(ActionNotAllowed, match="more than the amount still in the register"):
        run.act("xu.ming", "recovered", recovered_amount="60000.01")
    reads = [a for out in run.outcomes for a in out.audit if a.action == "follow_up"]
    assert reads[-1].data["registers_read"] == {"bad_debts": 2}


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def sh(db_url: str) -> Shell:
    return cli(db_url, "bad_debt_writeoff")


def cli_apply(sh: Shell) -> dict:
    return sh.js(
        [
            "start",
            "bad_debt_writeoff",
            "--as",
            "xu.ming",
            "--set",
            "customer=某经销商",
            "--set",
            "amount=80000",
            "--set",
            "reason=破产",
            "--set",
            "evidence=裁定书",
        ],
        now="2026-12-01T10:00:00+08:00",
    )


def test_cli_written_off_then_recovered(sh: Shell) -> None:
    inst = cli_apply(sh)
    review = inst["tasks"][0]["id"]
    sh.js(f"act {review} approve --as qian.hua")
    inst = sh.js(f"act {review} approve --as guo.yan")
    gm = inst["tasks"][0]
    assert gm["role"] == "general_manager"
    inst = sh.js(f"act {gm['id']} approve --as lin.feng")
    inst = sh.js(f"act {inst['tasks'][0]['id']} book --as deng.ping --set voucher_no=记-9")
    audit = inst["tasks"][0]
    assert audit["role"] == "internal_audit"
    inst = sh.js(
        f"act {audit['id']} checked --as cao.yu --set audit_finding=confirmed "
        "--set audit_note=已核实",
        now="2026-12-01T15:00:00+08:00",
    )
    follow = inst["tasks"][0]
    # the applicant (a branch manager) follows the register up: that is not approving
    assert (follow["role"], follow["due_at"]) == ("branch_manager", "2027-03-02T00:00:00+08:00")
    inst = sh.js(f"act {follow['id']} recovered --as xu.ming --set recovered_amount=80000")
    done = sh.js(f"act {inst['tasks'][0]['id']} book --as feng.xue --set recovery_voucher=收-1")
    assert (done["status"], done["outcome"], done["variables"]["remaining"]) == (
        "completed",
        "recovered",
        "0",
    )
    entry = sh.js("register show bad_debts 记-9")
    assert (entry["customer"], entry["amount"], entry["status"], entry["remaining"]) == (
        "某经销商",
        "80000",
        "recovered",
        "0",
    )
    history = sh.js("register history bad_debts 记-9")
    assert [h["instance_id"] for h in history] == [inst["id"]] * 2  # booked, then recovered


def test_cli_rejected_and_closed(sh: Shell) -> None:
    inst = cli_apply(sh)
    review = inst["tasks"][0]["id"]
    sh.refused(f"act {review} approve --as xu.ming", "needs role")
    done = sh.js(["act", review, "reject", "--as", "guo.yan", "--comment", "继续催收"])
    assert (done["status"], done["outcome"]) == ("completed", "rejected")

    inst = cli_apply(sh)
    review = inst["tasks"][0]["id"]
    sh.js(f"act {review} approve --as qian.hua")
    inst = sh.js(f"act {review} approve --as guo.yan")
    inst = sh.js(f"act {inst['tasks'][0]['id']} approve --as lin.feng")
    inst = sh.js(f"act {inst['tasks'][0]['id']} book --as deng.ping --set voucher_no=记-10")
    inst = sh.js(
        f"act {inst['tasks'][0]['id']} checked --as cao.yu --set audit_finding=confirmed "
        "--set audit_note=ok"
    )
    inst = sh.js(
        f"act {inst['tasks'][0]['id']} propose_closure --as xu.ming --set closure_reason=客户注销"
    )
    closure = inst["tasks"][0]["id"]
    sh.js(f"act {closure} approve --as guo.yan")
    done = sh.js(f"act {closure} approve --as qian.hua")
    assert (done["status"], done["outcome"]) == ("completed", "closed")
