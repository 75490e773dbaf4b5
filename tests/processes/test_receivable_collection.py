"""receivable_collection (第十四~十九条): the 50-day term, the late fee to the fen, the
collection steps, payment at any step, shipping only with approval, and every end state."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ActionNotAllowed, InvalidData
from engine.registers import MemoryRegisters
from tests.cli.helpers import Shell

from . import Run, at, audit_actions, books, cli

D = Decimal
RATE = D("0.0002")


def receivable(amount: str = "100000.00", received_on: str = "2026-01-05", **extra: str) -> Run:
    return Run.start(
        "receivable_collection",
        "deng.ping",
        at(f"{received_on} 18:00"),
        customer="天山乳业",
        amount=amount,
        received_on=received_on,
        reference="XS-2026-001",
        **extra,
    )


def overdue(run: Run) -> Run:
    """Let the 50-day term run out (fire its timers)."""
    run.advance(run.pending("escalation")[-1].due_at)
    assert (run.state, run.role) == ("phone_collection", "branch_manager")
    return run


def fee_oracle(
    amount: Decimal, due: date, payments: list[tuple[date, Decimal]], end: date
) -> Decimal:
    """Day by day: every day after the term, 0.02 % of what was unpaid at the day's start."""
    total = D(0)
    day = due + timedelta(days=1)
    while day <= end:
        unpaid = amount - sum((p for d, p in payments if d < day), D(0))
        total += unpaid * RATE
        day += timedelta(days=1)
    return total.quantize(D("0.01"), rounding=ROUND_HALF_UP)


# --------------------------------------------------------------------------- term


def test_the_term_is_50_days_after_receipt() -> None:
    run = receivable()
    assert (run.state, run.role) == ("awaiting_payment", "finance")
    assert run.vars["due_date"] == date(2026, 2, 24)
    assert run.task.due_at == at("2026-02-25 00:00")  # 24:00 of day 50
    assert [t.kind for t in run.pending()] == ["reminder", "deadline", "escalation"]
    assert run.pending("reminder")[0].due_at == at("2026-02-18 00:00")
    assert run.live(at("2026-02-24 23:59")) == {"days_overdue": 0, "late_fee": D("0.00")}
    fired = run.advance(at("2026-02-25 00:00"))
    assert run.state == "phone_collection"
    notices = [n for out in fired for n in out.notices if n.event == "escalated"]
    assert {"role:branch_manager", "role:sales_company"} <= set(notices[0].recipients)
    assert run.live(at("2026-02-25 09:00")) == {"days_overdue": 1, "late_fee": D("20.00")}


# received 12 Aug 2026: day 50 is Thursday 1 Oct, and 1-7 Oct 2026 are the National Day
# holidays, so the term ends on Thursday 8 Oct (Civil Code art. 203)
HOLIDAY_RECEIPT = "2026-08-12"
HOLIDAY_TERM_END = date(2026, 10, 8)


def policy_fee(amount: Decimal, term_end: date, paid_on: date) -> Decimal:
    """第十六条: 0.02 % (万分之二) of the overdue amount for every day past the term."""
    days_late = max(0, (paid_on - term_end).days)
    return (amount * RATE * days_late).quantize(D("0.01"), rounding=ROUND_HALF_UP)


def test_a_holiday_50th_day_moves_the_term_end_for_deadline_and_fee_alike() -> None:
    run = receivable(received_on=HOLIDAY_RECEIPT)
    assert date(2026, 8, 12) + timedelta(days=50) == date(2026, 10, 1)
    assert run.vars["due_date"] == HOLIDAY_TERM_END
    assert run.task.due_at == at("2026-10-09 00:00")  # 24:00 of the term's last day
    assert run.live(at("2026-10-08 23:00")) == {"days_overdue": 0, "late_fee": D("0.00")}
    assert run.live(at("2026-10-09 12:00")) == {"days_overdue": 1, "late_fee": D("20.00")}


def test_paid_on_the_moved_term_end_costs_no_fee() -> None:
    run = receivable(received_on=HOLIDAY_RECEIPT)
    run.act("feng.xue", "paid", payment_date="2026-10-08", now=at("2026-10-08 16:00"))
    assert (run.outcome, run.vars["closed_on"]) == ("paid", date(2026, 10, 8))
    expected = policy_fee(D("100000.00"), HOLIDAY_TERM_END, date(2026, 10, 8))
    assert run.vars["late_fee"] == expected == D("0.00")


def test_paid_the_day_after_the_moved_term_end_costs_one_day() -> None:
    run = overdue(receivable(received_on=HOLIDAY_RECEIPT))
    assert run.now == at("2026-10-09 00:00")
    run.act("xu.ming", "paid", payment_date="2026-10-09", now=at("2026-10-09 10:00"))
    run.act("deng.ping", "confirm")
    expected = policy_fee(D("100000.00"), HOLIDAY_TERM_END, date(2026, 10, 9))
    assert expected == D("100000.00") * D("0.0002")  # one day
    assert (run.outcome, run.vars["late_fee"]) == ("paid", expected)


@given(received=st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 31)))
@settings(max_examples=60, deadline=None)
def test_property_the_fee_starts_the_day_the_collection_task_opens(received: date) -> None:
    from engine.calendar import default_calendar

    cal = default_calendar()
    run = receivable(received_on=received.isoformat())
    # art. 203 as written: day 50, or the first working day after it
    end = received + timedelta(days=50)
    while not cal.is_working_day(end):
        end += timedelta(days=1)
    assert run.vars["due_date"] == end
    opens = at(f"{(end + timedelta(days=1)).isoformat()} 00:00")
    assert run.task.due_at == opens
    last_free = at(f"{end.isoformat()} 23:59")
    assert run.live(last_free) == {"days_overdue": 0, "late_fee": D("0.00")}
    assert run.live(opens + timedelta(hours=12))["late_fee"] == policy_fee(
        D("100000.00"), end, end + timedelta(days=1)
    )


def test_paid_within_the_term_costs_no_fee() -> None:
    run = receivable()
    run.act("feng.xue", "paid", payment_date="2026-02-24", now=at("2026-02-24 16:00"))
    assert (run.status, run.outcome) == ("completed", "paid")
    v = run.vars
    assert (v["late_fee"], v["outstanding"], v["paid_total"], v["closed_on"]) == (
        D("0.00"),
        D("0.00"),
        D("100000.00"),
        date(2026, 2, 24),
    )
    assert run.pending() == []


def test_late_fee_over_many_days_to_the_fen() -> None:
    # 162 days late: 123,456.78 x 0.0002 x 162 = 3,999.999672 -> 4,000.00
    run = overdue(receivable(amount="123456.78", received_on="2026-03-02"))
    assert run.vars["due_date"] == date(2026, 4, 21)
    assert run.live(at("2026-09-30 10:00")) == {"days_overdue": 162, "late_fee": D("4000.00")}
    assert run.live(at("2026-05-01 10:00"))["late_fee"] == D("246.91")  # 10 days: 246.91356
    run.act("xu.ming", "paid", payment_date="2026-09-30", now=at("2026-09-30 11:00"))
    assert (run.state, run.role) == ("confirm_payment", "finance")
    run.act("deng.ping", "confirm")
    assert (run.outcome, run.vars["fee_accrued"], run.vars["late_fee"]) == (
        "paid",
        D("3999.999672"),
        D("4000.00"),
    )
    # closed: the fee no longer grows
    assert run.live(at("2027-06-30 10:00")) == {"days_overdue": 162, "late_fee": D("4000.00")}


@pytest.mark.parametrize(
    ("amount", "days", "fee"),
    [("25.00", 1, "0.01"), ("24.99", 1, "0.00"), ("75.00", 1, "0.02"), ("10000.00", 365, "730.00")],
)
def test_the_fee_is_rounded_half_up_once(amount: str, days: int, fee: str) -> None:
    run = overdue(receivable(amount=amount, received_on="2026-03-02"))
    end = date(2026, 4, 21) + timedelta(days=days)
    assert run.live(at(f"{end.isoformat()} 12:00"))["late_fee"] == D(fee)


def test_part_payments_reduce_the_fee_base() -> None:
    run = overdue(receivable())
    run.act(
        "xu.ming",
        "paid",
        payment_amount="40000",
        payment_date="2026-02-25",
        now=at("2026-02-25 11:00"),
    )
    run.act("deng.ping", "confirm")
    assert (run.state, run.vars["outstanding"], run.vars["fee_accrued"]) == (
        "phone_collection",
        D("60000.00"),
        D("20.0000"),
    )
    assert run.vars["payment_amount"] is None and run.vars["last_payment_amount"] == D(40000)
    # 60,000 x 0.0002 = 12 a day for 28 more days
    assert run.live(at("2026-03-25 10:00"))["late_fee"] == D("356.00")
    run.act("xu.ming", "paid", payment_date="2026-03-25", now=at("2026-03-25 11:00"))
    run.act("deng.ping", "confirm")
    assert (run.outcome, run.vars["late_fee"], run.vars["paid_total"]) == (
        "paid",
        D("356.00"),
        D("100000.00"),
    )


@given(
    amount_fen=st.integers(min_value=1, max_value=100_000_000),
    parts=st.lists(
        st.tuples(st.integers(min_value=0, max_value=400), st.integers(min_value=1, max_value=99)),
        max_size=4,
    ),
    final_day=st.integers(min_value=0, max_value=800),
)
@settings(max_examples=120, deadline=None)
def test_property_fee_matches_a_day_by_day_count(
    amount_fen: int, parts: list[tuple[int, int]], final_day: int
) -> None:
    received = date(2026, 1, 5)
    run = receivable(amount=str(D(amount_fen).scaleb(-2)), received_on=received.isoformat())
    overdue(run)
    amount, paid, day = D(amount_fen).scaleb(-2), [], 0
    for offset, percent in parts:
        day += offset
        left = amount - sum((p for _, p in paid), D(0))
        part = (left * percent / 100).quantize(D("0.01"))
        if part <= 0 or part >= left:
            continue
        when = received + timedelta(days=day)
        run.act(
            "xu.ming",
            "paid",
            payment_amount=str(part),
            payment_date=when.isoformat(),
            now=max(run.now, at(f"{when.isoformat()} 20:00")),
        )
        run.act("deng.ping", "confirm")
        paid.append((when, part))
    end = received + timedelta(days=day + final_day)
    due = received + timedelta(days=50)
    expected = fee_oracle(amount, due, paid, end)
    assert run.live(at(f"{end.isoformat()} 23:00"))["late_fee"] == expected
    run.act(
        "xu.ming",
        "paid",
        payment_date=end.isoformat(),
        now=max(run.now, at(f"{end.isoformat()} 23:00")),
    )
    run.act("deng.ping", "confirm")
    assert (run.outcome, run.vars["late_fee"]) == ("paid", expected)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"payment_amount": "100000.01", "payment_date": "2026-03-01"}, "at most the amount"),
        ({"payment_date": "2026-03-11"}, "dated between the receipt"),
        ({"payment_date": "2026-01-04"}, "dated between the receipt"),
        ({"payment_amount": "0", "payment_date": "2026-03-01"}, "must be at least 0.01"),
        ({}, "payment_date: required by action 'paid'"),
    ],
)
def test_bad_payments_are_refused(data: dict[str, str], match: str) -> None:
    run = overdue(receivable())
    with pytest.raises((ActionNotAllowed, InvalidData), match=match):
        run.act("xu.ming", "paid", now=at("2026-03-10 10:00"), **data)


def test_payments_are_booked_in_date_order() -> None:
    run = overdue(receivable())
    run.act(
        "xu.ming",
        "paid",
        payment_amount="1000",
        payment_date="2026-03-05",
        now=at("2026-03-10 10:00"),
    )
    run.act("deng.ping", "confirm")
    with pytest.raises(ActionNotAllowed, match="not before the last payment"):
        run.act("xu.ming", "paid", payment_amount="1000", payment_date="2026-03-04")


# --------------------------------------------------------------------------- steps


def test_phone_agreement_lapse_legal_uncollectible() -> None:
    run = overdue(receivable())
    run.now = at("2026-03-02 10:00")
    with pytest.raises(ActionNotAllowed, match="only for a customer with good credit"):
        run.act(
            "xu.ming",
            "propose_agreement",
            overdue_reason="资金紧张",
            good_credit="false",
            repay_method="分三期",
            repay_schedule="3/31, 4/30, 5/31",
            repay_by="2026-05-31",
        )
    run.act(
        "xu.ming",
        "propose_agreement",
        overdue_reason="资金紧张",
        good_credit="true",
        repay_method="分三期",
        repay_schedule="3/31, 4/30, 5/31",
        repay_by="2026-05-31",
        salesperson="liu.yang",
    )
    assert (run.state, run.role, run.vars["agreement_amount"]) == (
        "agreement_approval",
        "sales_vp",
        D("100000.00"),
    )
    run.act("zhang.wei", "approve", approval_note="同意")
    # the case now names the salesperson: their own manager follows it up
    assert (run.state, run.role) == ("under_agreement", "user:xu.ming")
    # 24:00 of the last repayment day; Sunday 31 May moves to Monday 1 June (art. 203)
    assert run.task.due_at == at("2026-06-02 00:00")
    run.now = at("2026-03-31 15:00")
    run.act("xu.ming", "paid", payment_amount="30000", payment_date="2026-03-31")
    run.act("deng.ping", "confirm")
    assert (run.state, run.vars["outstanding"]) == ("under_agreement", D("70000.00"))
    assert run.task.due_at == at("2026-06-02 00:00")
    run.advance(at("2026-06-02 00:00"))  # the agreement lapsed unpaid
    assert run.state == "phone_collection"
    run.act("xu.ming", "go_legal", comment="违约且失联", now=at("2026-06-03 10:00"))
    assert (run.state, run.role) == ("legal_consultation", "legal_adviser")
    run.act("peng.lv", "advise_action", legal_advice="证据充分，建议起诉")
    assert (run.state, run.role) == ("legal_action", "user:xu.ming")
    run.act(
        "xu.ming",
        "uncollectible",
        comment="法院终结执行",
        uncollectible_reason="客户破产，无可执行财产",
        case_ref="(2026)新01执123号",
        now=at("2026-12-01 10:00"),
    )
    assert (run.status, run.outcome, run.vars["closed_on"]) == (
        "completed",
        "uncollectible",
        date(2026, 12, 1),
    )
    expected = fee_oracle(
        D(100000), date(2026, 2, 24), [(date(2026, 3, 31), D(30000))], date(2026, 12, 1)
    )
    assert run.vars["late_fee"] == expected
    assert run.live(at("2027-12-01 10:00"))["late_fee"] == expected


def test_vp_or_adviser_send_it_back_to_the_branch() -> None:
    run = overdue(receivable())
    run.now = at("2026-03-02 10:00")
    run.act(
        "xu.ming",
        "propose_agreement",
        overdue_reason="x",
        good_credit="true",
        repay_method="y",
        repay_schedule="z",
        repay_by="2026-04-30",
    )
    with pytest.raises(ActionNotAllowed, match="a comment is required"):
        run.act("zhang.wei", "reject")
    run.act("zhang.wei", "reject", comment="资信不足")
    assert run.state == "phone_collection"
    run.act("xu.ming", "go_legal", overdue_reason="恶意拖欠", comment="多次催收无果")
    run.act("peng.lv", "advise_against", legal_advice="金额小，诉讼成本高")
    assert run.state == "phone_collection"


def test_payment_reported_at_every_collection_step_closes_it() -> None:
    for steps in ([], ["legal"], ["agreement"], ["agreement", "approved"], ["legal", "action"]):
        run = overdue(receivable())
        run.now = at("2026-03-02 10:00")
        if "agreement" in steps:
            run.act(
                "xu.ming",
                "propose_agreement",
                overdue_reason="x",
                good_credit="true",
                repay_method="y",
                repay_schedule="z",
                repay_by="2026-04-30",
            )
        if "approved" in steps:
            run.act("zhang.wei", "approve")
        if "legal" in steps:
            run.act("xu.ming", "go_legal", overdue_reason="x", comment="恶意拖欠")
        if "action" in steps:
            run.act("peng.lv", "advise_action", legal_advice="起诉")
        assert "paid" in run.task.actions, run.state
        run.act(_holder(run.role), "paid", payment_date="2026-03-02")
        run.act("deng.ping", "confirm")
        assert (run.outcome, run.vars["late_fee"]) == ("paid", D("120.00")), steps


def _holder(role: str) -> str:
    return {"branch_manager": "xu.ming", "sales_vp": "zhang.wei", "legal_adviser": "peng.lv"}[role]


def test_payment_not_received_returns_to_the_step() -> None:
    run = overdue(receivable())
    run.act("xu.ming", "paid", payment_date="2026-03-01", now=at("2026-03-02 10:00"))
    with pytest.raises(ActionNotAllowed, match="needs role finance"):
        run.act("xu.ming", "confirm")
    run.act("deng.ping", "not_received", comment="银行未到账")
    assert (run.state, run.vars["outstanding"], run.vars["last_payment_on"]) == (
        "phone_collection",
        D("100000.00"),
        None,
    )


def test_shipping_needs_the_sales_vps_approval_and_returns() -> None:
    run = overdue(receivable())
    run.now = at("2026-03-02 10:00")
    with pytest.raises(InvalidData, match="shipment_order: required"):
        run.act("xu.ming", "request_shipment")
    run.act("xu.ming", "request_shipment", shipment_order="FH-001", shipment_amount="5000")
    assert (run.state, run.role) == ("shipment_approval", "sales_vp")
    with pytest.raises(InvalidData, match="shipment_terms: required"):
        run.act("zhang.wei", "approve_shipment")
    run.act("zhang.wei", "approve_shipment", shipment_terms="prepayment")
    assert (run.state, run.vars["shipment_decision"]) == ("phone_collection", "approved")
    run.act("xu.ming", "go_legal", overdue_reason="x", comment="恶意拖欠")
    run.act("peng.lv", "advise_action", legal_advice="起诉")
    run.act("xu.ming", "request_shipment", shipment_order="FH-002", shipment_amount="8000")
    run.act("zhang.wei", "refuse_shipment", comment="诉讼期间不发货")
    assert (run.state, run.vars["shipment_decision"]) == ("legal_action", "refused")


def test_asset_for_debt_counts_as_a_payment() -> None:
    run = overdue(receivable())
    run.act("xu.ming", "settle_by_asset", asset_ref="ASSET-7", now=at("2026-03-02 10:00"))
    assert (run.state, run.role) == ("asset_pending", "finance")
    run.act("deng.ping", "asset_rejected", comment="总经理未批准")
    assert run.state == "phone_collection"
    run.act("xu.ming", "settle_by_asset", asset_ref="ASSET-8")
    run.act("deng.ping", "asset_booked", payment_amount="60000", payment_date="2026-03-02")
    assert (run.state, run.vars["outstanding"]) == ("phone_collection", D("40000.00"))
    run.act("xu.ming", "settle_by_asset", asset_ref="ASSET-9")
    run.act("deng.ping", "asset_booked", payment_amount="40000", payment_date="2026-03-02")
    assert (run.outcome, run.vars["late_fee"]) == ("paid", D("120.00"))  # 6 days of 20.00


def test_a_receivable_booked_in_error_is_cancelled() -> None:
    run = receivable()
    with pytest.raises(InvalidData, match="close_reason: required"):
        run.act("deng.ping", "cancel")
    run.act("deng.ping", "cancel", close_reason="客户退货", now=at("2026-01-10 10:00"))
    assert (run.outcome, run.vars["late_fee"], run.vars["outstanding"]) == (
        "cancelled",
        D("0"),
        D("0"),
    )
    assert run.live(at("2026-12-31 10:00"))["late_fee"] == D("0.00")


def test_audit_trail_of_a_collected_debt() -> None:
    run = overdue(receivable())
    run.act("xu.ming", "paid", payment_date="2026-02-26", now=at("2026-02-26 10:00"))
    run.act("deng.ping", "confirm")
    assert audit_actions(run) == [
        ("deng.ping", "start", None, "ledger"),
        ("system", "route", "ledger", "ledger_booking"),
        ("system", "route", "ledger_booking", "awaiting_payment"),
        ("system", "reminder", "awaiting_payment", "awaiting_payment"),
        ("system", "deadline", "awaiting_payment", "awaiting_payment"),
        ("system", "escalation", "awaiting_payment", "phone_collection"),
        ("xu.ming", "paid", "phone_collection", "confirm_payment"),
        ("deng.ping", "confirm", "confirm_payment", "apply_payment"),
        ("system", "route", "apply_payment", "settled"),
    ]


# --------------------------------------------------------------------------- the ledger


def ledger_balance(mem: MemoryRegisters, customer: str) -> str | None:
    row = mem.reader().get("receivables", customer)
    return None if row is None else row.values["balance"]


def test_the_case_keeps_the_customers_ledger_balance() -> None:
    mem = books(receivables={"天山乳业": {"balance": "50000"}})

    def booked(amount: str, **extra: str) -> Run:
        return Run.start(
            "receivable_collection",
            "deng.ping",
            at("2026-03-02 10:00"),
            registers=mem,
            customer="天山乳业",
            amount=amount,
            received_on="2026-03-02",
            **extra,
        )

    one = booked("100000")
    assert ledger_balance(mem, "天山乳业") == "150000"
    two = booked("30000")
    assert ledger_balance(mem, "天山乳业") == "180000"
    one.act(
        "deng.ping",
        "paid",
        payment_amount="40000",
        payment_date="2026-03-10",
        now=at("2026-03-10 10:00"),
    )
    assert ledger_balance(mem, "天山乳业") == "140000"
    two.act("deng.ping", "cancel", close_reason="退货", now=at("2026-03-10 11:00"))
    assert ledger_balance(mem, "天山乳业") == "110000"
    one.act("deng.ping", "paid", payment_date="2026-03-20", now=at("2026-03-20 10:00"))
    assert (one.outcome, ledger_balance(mem, "天山乳业")) == ("paid", "50000")
    # an amount the ledger already holds adds nothing; its payment still comes off
    three = booked("20000", in_ledger="true")
    assert ledger_balance(mem, "天山乳业") == "50000"
    three.act("deng.ping", "paid", payment_date="2026-03-21", now=at("2026-03-21 10:00"))
    assert ledger_balance(mem, "天山乳业") == "30000"
    # a customer new to the ledger gets a row
    Run.start(
        "receivable_collection",
        "deng.ping",
        at("2026-03-02 10:00"),
        registers=mem,
        customer="新客户",
        amount="999.99",
        received_on="2026-03-02",
    )
    assert ledger_balance(mem, "新客户") == "999.99"


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def sh(db_url: str) -> Shell:
    return cli(db_url, "receivable_collection", deployed_at="2026-01-01T09:00:00+08:00")


def cli_receivable(sh: Shell, amount: str = "123456.78", received_on: str = "2026-03-02") -> dict:
    return sh.js(
        [
            "start",
            "receivable_collection",
            "--as",
            "deng.ping",
            "--set",
            "customer=天山乳业",
            "--set",
            f"amount={amount}",
            "--set",
            f"received_on={received_on}",
        ],
        now=f"{received_on}T18:00:00+08:00",
    )


def test_cli_overdue_collected_with_the_fee_recorded(sh: Shell) -> None:
    inst = cli_receivable(sh)
    assert inst["tasks"][0]["due_at"] == "2026-04-22T00:00:00+08:00"
    assert sh.js("tick", now="2026-04-21T23:00:00+08:00")["fired"] == 1  # the 7-day reminder
    assert sh.js(f"show {inst['id']}", now="2026-04-21T23:00:00+08:00")["state"] == (
        "awaiting_payment"
    )
    report = sh.js("tick", now="2026-04-22T00:00:10+08:00")
    assert report["fired"] == 2  # deadline and escalation
    shown = sh.js(f"show {inst['id']}", now="2026-09-30T10:00:00+08:00")
    assert shown["state"] == "phone_collection"
    assert shown["variables"]["late_fee"] == "4000.00"
    assert shown["variables"]["days_overdue"] == 162
    task = shown["tasks"][0]
    assert task["role"] == "branch_manager"
    inst = sh.js(
        f"act {task['id']} paid --as xu.ming --set payment_date=2026-09-30",
        now="2026-09-30T11:00:00+08:00",
    )
    confirm = inst["tasks"][0]
    assert confirm["role"] == "finance"
    done = sh.js(f"act {confirm['id']} confirm --as deng.ping", now="2026-09-30T11:30:00+08:00")
    assert (done["status"], done["outcome"]) == ("completed", "paid")
    assert done["variables"]["late_fee"] == "4000.00"
    assert done["variables"]["outstanding"] == "0.00"


def test_cli_legal_action_ends_uncollectible(sh: Shell) -> None:
    inst = cli_receivable(sh, amount="50000")
    sh.ok("tick", now="2026-04-22T00:00:10+08:00")
    at_ = "2026-05-01T10:00:00+08:00"
    task = sh.js(f"show {inst['id']}", now=at_)["tasks"][0]["id"]
    inst = sh.js(
        [
            "act",
            task,
            "go_legal",
            "--as",
            "xu.ming",
            "--set",
            "overdue_reason=恶意拖欠",
            "--comment",
            "多次催收无果",
        ],
        now=at_,
    )
    task = inst["tasks"][0]
    assert task["role"] == "legal_adviser"
    inst = sh.js(f"act {task['id']} advise_action --as peng.lv --set legal_advice=起诉", now=at_)
    task = inst["tasks"][0]["id"]
    done = sh.js(
        [
            "act",
            task,
            "uncollectible",
            "--as",
            "xu.ming",
            "--set",
            "uncollectible_reason=无财产可执行",
            "--comment",
            "申请坏账核销",
        ],
        now=at_,
    )
    assert (done["status"], done["outcome"]) == ("completed", "uncollectible")
    assert done["variables"]["late_fee"] == "100.00"  # 10 days x 10.00


def test_cli_cancelled_and_shipment_refused(sh: Shell) -> None:
    inst = cli_receivable(sh)
    task = inst["tasks"][0]["id"]
    done = sh.js(
        f"act {task} cancel --as feng.xue --set close_reason=开票错误",
        now="2026-03-05T10:00:00+08:00",
    )
    assert (done["status"], done["outcome"]) == ("completed", "cancelled")

    inst = cli_receivable(sh, received_on="2026-03-03")
    sh.ok("tick", now="2026-04-23T00:00:10+08:00")
    at_ = "2026-04-24T10:00:00+08:00"
    task = sh.js(f"show {inst['id']}", now=at_)["tasks"][0]["id"]
    inst = sh.js(
        f"act {task} request_shipment --as xu.ming --set shipment_order=FH-9 "
        "--set shipment_amount=20000",
        now=at_,
    )
    vp = inst["tasks"][0]
    assert vp["role"] == "sales_vp"
    inst = sh.js(
        ["act", vp["id"], "refuse_shipment", "--as", "zhang.wei", "--comment", "先还款"], now=at_
    )
    assert (inst["state"], inst["variables"]["shipment_decision"]) == (
        "phone_collection",
        "refused",
    )


def test_cli_holiday_term_end_payment_dates(sh: Shell) -> None:
    """Day 50 is 1 Oct 2026 (National Day); the term ends 8 Oct: no fee on 8 Oct, one day on
    9 Oct (0.02 % of 100,000.00 = 20.00)."""
    early = cli_receivable(sh, amount="100000.00", received_on=HOLIDAY_RECEIPT)
    late = cli_receivable(sh, amount="100000.00", received_on=HOLIDAY_RECEIPT)
    assert early["variables"]["due_date"] == "2026-10-08"
    assert early["tasks"][0]["due_at"] == "2026-10-09T00:00:00+08:00"
    sh.ok("tick", now="2026-10-08T12:00:00+08:00")  # only the reminders
    done = sh.js(
        f"act {early['tasks'][0]['id']} paid --as feng.xue --set payment_date=2026-10-08",
        now="2026-10-08T16:00:00+08:00",
    )
    fee = policy_fee(D("100000.00"), HOLIDAY_TERM_END, date(2026, 10, 8))
    assert (done["outcome"], D(done["variables"]["late_fee"])) == ("paid", fee)

    sh.ok("tick", now="2026-10-09T00:00:10+08:00")  # the term is over: collection opens
    shown = sh.js(f"show {late['id']}", now="2026-10-09T10:00:00+08:00")
    assert shown["state"] == "phone_collection"
    inst = sh.js(
        f"act {shown['tasks'][0]['id']} paid --as xu.ming --set payment_date=2026-10-09",
        now="2026-10-09T10:00:00+08:00",
    )
    done = sh.js(
        f"act {inst['tasks'][0]['id']} confirm --as deng.ping", now="2026-10-09T11:00:00+08:00"
    )
    fee = policy_fee(D("100000.00"), HOLIDAY_TERM_END, date(2026, 10, 9))
    assert fee == D("20.00")
    assert (done["outcome"], D(done["variables"]["late_fee"])) == ("paid", fee)


def test_collection_goes_to_the_salespersons_own_manager() -> None:
    # huang.tao sells for the south branch: its head collects, not the north branch's manager
    run = receivable(salesperson="huang.tao")
    run.advance(run.pending("escalation")[-1].due_at)
    assert (run.state, run.role) == ("phone_collection", "user:he.jing")
    reason = run.task.meta["assigned"]["slots"][0]["reason"]
    assert reason == "manager of variable salesperson: manager of huang.tao (head of sales_south)"
    with pytest.raises(ActionNotAllowed, match="is assigned to he.jing; xu.ming is not one"):
        run.act("xu.ming", "go_legal", overdue_reason="x", comment="x")
    run.act("he.jing", "go_legal", overdue_reason="长期欠账", comment="恶意拖欠")
    assert run.state == "legal_consultation"
