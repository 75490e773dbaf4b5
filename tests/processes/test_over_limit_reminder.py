"""over_limit_reminder (the second 第十七条): every Monday the customers whose receivable
balance is above their credit limit are found from the registers, and the branch in charge
of each is reminded; a debt past the 50-day term can be sent to receivable collection."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ActionNotAllowed
from tests.cli.helpers import Shell

from . import PROCESSES, Run, at, books, cli

MONDAY = at("2027-01-04 08:30")

CREDIT = {
    "天山乳业": {"grade": "A", "credit_limit": "2000000", "term_days": 50, "branch": "sales_north"},
    "某乳品厂": {"grade": "B", "credit_limit": "800000", "term_days": 40, "branch": "sales_south"},
    "某超市": {"grade": "C", "credit_limit": "0", "term_days": 0, "branch": "sales_south"},
    "某商行": {"grade": "B", "credit_limit": "500000", "term_days": 30},  # no branch named
}
LEDGER = {
    "天山乳业": {"balance": "2000000"},  # at the limit: not over
    "某乳品厂": {
        "balance": "800000.01",
        "overdue_amount": "120000",
        "oldest_unpaid_on": "2026-10-20",
    },
    "某超市": {"balance": "1"},  # C: any credit is over
    "某商行": {"balance": "600000"},
    "未评级客户": {"balance": "5000"},  # not in the credit table: a limit of 0
}


def test_the_sweep_reminds_every_customer_over_its_limit_and_only_those() -> None:
    mem = books(customer_credit=CREDIT, receivables=LEDGER)
    run = Run.start("over_limit_reminder", "ma.hui", MONDAY, registers=mem)
    assert (run.status, run.outcome) == ("completed", "swept")
    kids = run.spawned
    assert [k.input["customer"] for k in kids] == ["未评级客户", "某乳品厂", "某商行", "某超市"]
    assert all(not k.wait and k.on_parent_end == "keep" for k in kids)
    assert all(k.input["scope"] == "customer" and k.requester == "ma.hui" for k in kids)


def test_a_line_above_the_grades_maximum_counts_at_the_maximum() -> None:
    """A B customer whose line in the table says 2,000,000 (an imported or stale line) may
    owe at most 1,000,000 (第十条): a balance of 1,500,000 is over its limit, as
    credit_override reads it, and the branch is reminded."""
    credit = {"某乳品厂": {"grade": "B", "credit_limit": "2000000", "branch": "sales_south"}}
    ledger = {"某乳品厂": {"balance": "1500000"}}
    mem = books(customer_credit=credit, receivables=ledger)
    run = Run.start("over_limit_reminder", "ma.hui", MONDAY, registers=mem)
    assert [k.input["customer"] for k in run.spawned] == ["某乳品厂"]
    one = Run.start(
        "over_limit_reminder",
        "ma.hui",
        MONDAY,
        registers=books(customer_credit=credit, receivables=ledger),
        scope="customer",
        customer="某乳品厂",
    )
    assert (str(one.vars["credit_limit"]), str(one.vars["over_by"])) == ("1000000", "500000")


def reminder(customer: str) -> Run:
    mem = books(customer_credit=CREDIT, receivables=LEDGER)
    return Run.start(
        "over_limit_reminder", "ma.hui", MONDAY, registers=mem, scope="customer", customer=customer
    )


def test_the_reminder_goes_to_the_branch_in_charge() -> None:
    run = reminder("某乳品厂")
    assert run.task.roles == ("user:he.jing",)  # the south branch's manager
    v = run.vars
    assert (str(v["balance"]), str(v["credit_limit"]), str(v["over_by"])) == (
        "800000.01",
        "800000",
        "0.01",
    )
    assert reminder("天山乳业").task.roles == ("user:xu.ming",)
    # no branch in the table: any branch manager
    assert reminder("某商行").task.roles == ("branch_manager",)


def test_the_branch_records_what_it_did() -> None:
    run = reminder("某超市")
    run.act(run.task.roles[0].removeprefix("user:"), "collecting", action_note="已电话催款")
    assert (run.outcome, run.vars["action_note"]) == ("reminded", "已电话催款")


def test_an_overdue_debt_can_be_sent_to_collection() -> None:
    run = reminder("某商行")
    with pytest.raises(ActionNotAllowed, match="nothing of this customer's debt is past"):
        run.act("xu.ming", "to_collection")
    run = reminder("某乳品厂")
    run.act("he.jing", "to_collection", action_note="超期 76 天")
    assert (run.outcome, [k.process for k in run.spawned]) == (
        "collection",
        ["receivable_collection"],
    )
    [kid] = run.spawned
    assert kid.requester == "ma.hui"
    assert kid.input == {
        "customer": "某乳品厂",
        "amount": "120000",
        "received_on": "2026-10-20",
        "branch": "sales_south",
        "in_ledger": True,
    }


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def sh(db_url: str, tmp_path: Path) -> Shell:
    shell = cli(db_url, "over_limit_reminder", deployed_at="2026-12-01T10:00:00+08:00")
    shell.ok(
        ["deploy", str(PROCESSES / "receivable_collection.yaml")], now="2026-12-01T10:00:00+08:00"
    )
    credit = tmp_path / "credit.csv"
    credit.write_text(
        "customer,grade,credit_limit,term_days,branch\n"
        "天山乳业,A,2000000,50,sales_north\n"
        "某乳品厂,B,800000,40,sales_south\n",
        encoding="utf-8",
    )
    ledger = tmp_path / "ledger.csv"
    ledger.write_text(
        "customer,balance,overdue_amount,oldest_unpaid_on\n"
        "天山乳业,1500000,0,\n"
        "某乳品厂,950000,120000,2026-10-20\n",
        encoding="utf-8",
    )
    for name, path in (("customer_credit", credit), ("receivables", ledger)):
        shell.ok(f"register import {name} {path} --as ma.hui", now="2026-12-28T10:00")
    return shell


def test_cli_monday_sweep_reminds_the_south_branch_which_sends_it_to_collection(
    sh: Shell,
) -> None:
    report = sh.js("tick", now="2027-01-04T08:30:30+08:00")
    [sweep] = report["scheduled_starts"]
    assert sh.js(f"show {sweep}")["outcome"] == "swept"
    assert sh.js("tasks --as xu.ming") == []  # the north branch's customer is within its limit
    [task] = sh.js("tasks --as he.jing")
    child = sh.js(f"show {task['instance_id']}")
    assert (child["variables"]["customer"], child["variables"]["over_by"]) == ("某乳品厂", "150000")
    done = sh.js(
        f"act {task['id']} to_collection --as he.jing --set action_note=超期",
        now="2027-01-04T10:00",
    )
    assert done["outcome"] == "collection"
    cases = [i for i in sh.js("instances") if i["process"] == "receivable_collection"]
    assert len(cases) == 1
    case = sh.js(f"show {cases[0]['id']}")
    assert (case["variables"]["amount"], case["variables"]["received_on"], case["requester"]) == (
        "120000",
        "2026-10-20",
        "ma.hui",
    )
    # received 20 Oct: the 50-day term ended 9 Dec, so the case is already due for collection
    assert case["state"] == "awaiting_payment"
