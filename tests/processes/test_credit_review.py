"""credit_review (第十八条): each quarter the customers whose receivables changed or who were
graded since the last review get a credit-line revision; the review closes when all end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import Shell

from . import PROCESSES, Run, at, books, cli

CREDIT = {
    # graded in the year-end round of 2026 (after 2026-10-01): listed
    "天山乳业": {
        "grade": "A",
        "graded_on": "2026-12-31",
        "credit_limit": "2000000",
        "term_days": 50,
    },
    # graded a year before, ledger row changed in the quarter: listed
    "某乳品厂": {
        "grade": "B",
        "graded_on": "2025-12-31",
        "credit_limit": "800000",
        "term_days": 40,
    },
    # nothing changed: not listed
    "某超市": {"grade": "C", "graded_on": "2025-12-31", "credit_limit": "0", "term_days": 0},
}


def test_since_defaults_to_three_months_before() -> None:
    for day, since in (
        ("2027-01-01 09:00", "2026-10-01"),
        ("2027-04-01 09:00", "2027-01-01"),
        ("2027-05-15 10:00", "2027-02-01"),
    ):
        run = Run.start("credit_review", "ma.hui", at(day), registers=books())
        assert str(run.vars["since"]) == since
        assert (run.outcome, run.vars["customers_changed"]) == ("reviewed", 0)


def test_the_listed_customers_get_one_revision_each() -> None:
    mem = books(customer_credit=CREDIT)
    # ledger changes: one before the quarter, one in it, one for a customer not in the table
    mem.write("receivables", "某超市", {"balance": "1000"}, at("2026-09-30 23:59"))
    mem.write("receivables", "某乳品厂", {"balance": "900000"}, at("2026-11-02 10:00"))
    mem.write("receivables", "未评级客户", {"balance": "5000"}, at("2026-11-03 10:00"))
    run = Run.start("credit_review", "ma.hui", at("2027-01-01 09:00"), registers=mem)
    assert run.vars["customers_list"] == "天山乳业, 某乳品厂"
    assert run.vars["customers_changed"] == 2
    assert [(k.process, k.input["customer"], k.input["origin"]) for k in run.spawned] == [
        ("credit_table", "天山乳业", "quarterly_review"),
        ("credit_table", "某乳品厂", "quarterly_review"),
    ]
    assert all(k.wait for k in run.spawned)
    assert (run.status, run.state) == ("active", "revisions")
    run.child_finished(run.spawned[0].child_id, "unchanged")
    run.child_finished(run.spawned[1].child_id, "approved")
    assert (run.status, run.outcome) == ("completed", "reviewed")


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def sh(db_url: str, tmp_path: Path) -> Shell:
    shell = cli(db_url, "credit_review", deployed_at="2026-09-01T10:00:00+08:00")
    shell.ok(["deploy", str(PROCESSES / "credit_table.yaml")], now="2026-09-01T10:00:00+08:00")
    credit = tmp_path / "credit.csv"
    credit.write_text(
        "customer,grade,graded_on,credit_limit,term_days,branch\n"
        + "".join(
            f"{k},{v['grade']},{v['graded_on']},{v['credit_limit']},{v['term_days']},sales_north\n"
            for k, v in CREDIT.items()
        ),
        encoding="utf-8",
    )
    shell.ok(f"register import customer_credit {credit} --as ma.hui", now="2026-09-01T12:00")
    ledger = tmp_path / "receivables.csv"
    ledger.write_text(
        "customer,balance,overdue_amount,oldest_unpaid_on\n某乳品厂,900000,120000,2026-09-01\n",
        encoding="utf-8",
    )
    shell.ok(f"register import receivables {ledger} --as ma.hui", now="2026-11-02T10:00")
    return shell


def test_cli_the_quarterly_schedule_proposes_new_limits_for_approval(sh: Shell) -> None:
    report = sh.js("tick", now="2027-01-01T09:00:30+08:00")
    [review_id] = report["scheduled_starts"]
    review = sh.js(f"show {review_id}")
    assert (review["state"], review["variables"]["customers_list"]) == (
        "revisions",
        "天山乳业, 某乳品厂",
    )
    tasks = {
        sh.js(f"show {t['instance_id']}")["variables"]["customer"]: t
        for t in sh.js("tasks --as ma.hui")
    }
    assert sorted(tasks) == ["天山乳业", "某乳品厂"]
    # 天山乳业: kept as it is (no approval needed)
    sh.js(
        ["act", tasks["天山乳业"]["id"], "keep", "--as", "ma.hui", "--set", "basis=正常"],
        now="2027-01-04T10:00",
    )
    # 某乳品厂: receivables grew, the limit is cut, the VP and the GM approve
    inst = sh.js(
        f"act {tasks['某乳品厂']['id']} submit --as ma.hui --set credit_limit=500000 "
        "--set term_days=30",
        now="2027-01-04T10:30",
    )
    assert inst["variables"]["receivable_balance"] == "900000"
    inst = sh.js(f"act {inst['tasks'][0]['id']} approve --as zhang.wei", now="2027-01-04T11:00")
    assert sh.js(f"show {review_id}")["status"] == "active"
    sh.js(f"act {inst['tasks'][0]['id']} approve --as lin.feng", now="2027-01-04T12:00")
    done = sh.js(f"show {review_id}")
    assert (done["status"], done["outcome"]) == ("completed", "reviewed")
    row = sh.js("register show customer_credit 某乳品厂")
    assert (row["credit_limit"], row["term_days"], row["reviewed_on"]) == (
        "500000",
        30,
        "2027-01-04",
    )
    assert sh.js("register show customer_credit 天山乳业")["reviewed_on"] == "2027-01-04"
    assert sh.js("register show customer_credit 某超市")["reviewed_on"] is None


def test_cli_a_customer_without_a_grade_does_not_stop_the_review(sh: Shell, tmp_path: Path) -> None:
    """A row of the credit table with no grade yet (imported with its branch only) whose
    receivables changed cannot get a credit line (credit_table needs a grade): it is left
    out of the review rather than making the whole quarterly review fail to start."""
    extra = tmp_path / "extra.csv"
    extra.write_text("customer,branch\n新客户,sales_north\n", encoding="utf-8")
    sh.ok(f"register import customer_credit {extra} --as ma.hui", now="2026-11-03T10:00")
    ledger = tmp_path / "ledger2.csv"
    ledger.write_text("customer,balance\n新客户,30000\n", encoding="utf-8")
    sh.ok(f"register import receivables {ledger} --as ma.hui", now="2026-11-03T11:00")
    report = sh.js("tick", now="2027-01-01T09:00:30+08:00")
    [review_id] = report["scheduled_starts"]
    review = sh.js(f"show {review_id}")
    assert (review["state"], review["variables"]["customers_list"]) == (
        "revisions",
        "天山乳业, 某乳品厂",
    )
