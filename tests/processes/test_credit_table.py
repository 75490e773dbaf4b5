"""credit_table (第十条, 第十二条): the sales company compiles a graded customer's credit line
within the grade's maximum, the sales VP reviews, the GM approves, and only the approved
line reaches the credit table (register customer_credit)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ActionNotAllowed, InvalidData, StartRefused
from engine.registers import MemoryRegisters
from tests.cli.helpers import Shell

from . import Run, at, books, cli

D = Decimal
NOW = at("2027-01-04 10:00")
CUSTOMER = "天山乳业"


def graded_as(grade: str, **line: Any) -> MemoryRegisters:
    row = {"grade": grade, "score": "8.20", "graded_on": "2026-12-31"} | line
    return books(
        customer_credit={CUSTOMER: row},
        receivables={CUSTOMER: {"balance": "350000", "overdue_amount": "20000"}},
    )


def compiling(mem: MemoryRegisters, **start: str) -> Run:
    run = Run.start("credit_table", "ma.hui", NOW, registers=mem, customer=CUSTOMER, **start)
    assert (run.state, run.role) == ("compile", "sales_company")
    return run


def in_table(mem: MemoryRegisters) -> dict[str, Any]:
    row = mem.reader().get("customer_credit", CUSTOMER)
    assert row is not None
    return dict(row.values)


def test_the_task_shows_the_grade_the_current_line_and_the_ledger() -> None:
    run = compiling(graded_as("A", credit_limit="1500000", term_days=45, branch="sales_north"))
    v = run.vars
    assert (v["grade"], v["max_limit"], v["current_limit"], v["current_term_days"]) == (
        "A",
        D(2_000_000),
        D(1_500_000),
        45,
    )
    assert (v["branch"], v["receivable_balance"], v["overdue_amount"]) == (
        "sales_north",
        D(350_000),
        D(20_000),
    )


def test_an_ungraded_customer_is_refused() -> None:
    with pytest.raises(StartRefused, match=r"grade it\s+first \(customer_grading\)"):
        Run.start("credit_table", "ma.hui", NOW, registers=MemoryRegisters(), customer="新客户")


def test_the_grade_and_figures_are_not_start_input() -> None:
    for field, value in (("grade", "A"), ("credit_limit", "2000000"), ("max_limit", "9")):
        with pytest.raises(InvalidData, match="cannot be set by start"):
            compiling(graded_as("B"), **{field: value})


@pytest.mark.parametrize(
    ("grade", "limit", "term", "ok"),
    [
        ("A", "2000000", "50", True),
        ("A", "2000000.01", "50", False),
        ("B", "1000000", "30", True),
        ("B", "1000001", "30", False),
        ("C", "0", "0", True),  # C: no credit sales (第十条.3)
        ("C", "1", "50", False),
        ("A", "500000", "0", False),  # a credit line needs a term
    ],
)
def test_the_line_is_within_the_grades_maximum(grade: str, limit: str, term: str, ok: bool) -> None:
    run = compiling(graded_as(grade))
    figures = {"credit_limit": limit, "term_days": term, "branch": "sales_north"}
    if ok:
        run.act("ma.hui", "submit", **figures)
        assert (run.state, run.role) == ("vp_review", "sales_vp")
    else:
        with pytest.raises(ActionNotAllowed, match="at most the grade's maximum"):
            run.act("ma.hui", "submit", **figures)


def test_a_term_above_50_days_is_refused() -> None:
    run = compiling(graded_as("A"))
    with pytest.raises(InvalidData, match="term_days: must be at most 50"):
        run.act("ma.hui", "submit", credit_limit="1", term_days="51", branch="sales_north")


def test_only_the_gms_approval_writes_the_line() -> None:
    mem = graded_as("A", credit_limit="1500000", term_days=45)
    run = compiling(mem)
    run.act("ma.hui", "submit", credit_limit="1800000", term_days="40", branch="sales_south")
    run.act("zhang.wei", "send_back", comment="说明理由")
    assert run.state == "compile"
    run.act("ma.hui", "submit", credit_limit="1800000", term_days="40", basis="回款良好")
    run.act("zhang.wei", "approve", review_note="同意")
    assert in_table(mem)["credit_limit"] == "1500000"  # not yet: the GM has not approved
    run.act("lin.feng", "approve", now=at("2027-01-05 09:00"))
    assert run.outcome == "approved"
    row = in_table(mem)
    assert (row["credit_limit"], row["term_days"], row["branch"]) == ("1800000", 40, "sales_south")
    assert (row["approved_on"], row["approved_by"], row["reviewed_on"]) == (
        "2027-01-05",
        "lin.feng",
        "2027-01-05",
    )
    assert row["grade"] == "A"  # the grading's, untouched


def test_a_rejected_line_leaves_the_table_as_it_was() -> None:
    mem = graded_as("B", credit_limit="600000", term_days=30)
    run = compiling(mem)
    run.act("ma.hui", "submit", credit_limit="1000000", term_days="50", branch="sales_north")
    run.act("zhang.wei", "approve")
    run.act("lin.feng", "reject", comment="回款不佳")
    assert run.outcome == "rejected"
    assert (in_table(mem)["credit_limit"], in_table(mem)["term_days"]) == ("600000", 30)


def test_the_gm_approves_against_the_grade_as_it_is_now() -> None:
    mem = graded_as("A")
    run = compiling(mem)
    run.act("ma.hui", "submit", credit_limit="2000000", term_days="50", branch="sales_north")
    run.act("zhang.wei", "approve")
    # a grading completes meanwhile and lowers the customer to B
    mem.write("customer_credit", CUSTOMER, {"grade": "B"}, at("2027-01-04 11:00"))
    with pytest.raises(ActionNotAllowed, match="grade in the credit table changed"):
        run.act("lin.feng", "approve")
    run.act("lin.feng", "send_back", comment="已降为 B 级")
    run.act("ma.hui", "submit", credit_limit="1000000", term_days="50")
    assert run.vars["max_limit"] == D(2_000_000)  # read at the start: the guard is what counts
    run.act("zhang.wei", "approve").act("lin.feng", "approve")
    assert in_table(mem)["credit_limit"] == "1000000"


def test_keeping_the_line_records_the_review_only() -> None:
    mem = graded_as("B", credit_limit="800000", term_days=40)
    run = compiling(mem, origin="quarterly_review", review_since="2026-10-01")
    run.act("ma.hui", "keep", basis="经营正常，回款及时", now=at("2027-01-06 10:00"))
    assert (run.outcome, run.snap.tasks) == ("unchanged", ())
    row = in_table(mem)
    assert (row["credit_limit"], row["term_days"], row["reviewed_on"]) == (
        "800000",
        40,
        "2027-01-06",
    )


def test_a_line_above_a_lowered_grade_cannot_be_kept() -> None:
    run = compiling(graded_as("C", credit_limit="500000", term_days=30))
    with pytest.raises(ActionNotAllowed, match="no current line within the grade's maximum"):
        run.act("ma.hui", "keep")


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def sh(db_url: str, tmp_path: Path) -> Shell:
    shell = cli(db_url, "credit_table")
    book = tmp_path / "credit.json"
    book.write_text(
        '[{"customer": "天山乳业", "grade": "A", "graded_on": "2026-12-31",'
        ' "credit_limit": "1500000", "term_days": 45, "branch": "sales_north"}]',
        encoding="utf-8",
    )
    shell.ok(f"register import customer_credit {book} --as ma.hui", now="2026-12-31T18:00:00+08:00")
    return shell


def test_cli_compiled_reviewed_approved_and_in_the_table(sh: Shell) -> None:
    sh.refused(
        "start credit_table --as ma.hui --set customer=新客户",
        "has no grade in the credit table",
    )
    sh.refused(
        "start credit_table --as ma.hui --set customer=天山乳业 --set credit_limit=2000000",
        "cannot be set by start",
    )
    inst = sh.js("start credit_table --as ma.hui --set customer=天山乳业", now="2027-01-04T10:00")
    task = inst["tasks"][0]["id"]
    sh.refused(
        f"act {task} submit --as ma.hui --set credit_limit=2500000 --set term_days=50",
        "at most the grade's maximum",
    )
    inst = sh.js(f"act {task} submit --as ma.hui --set credit_limit=2000000 --set term_days=50")
    review = inst["tasks"][0]
    assert review["role"] == "sales_vp"
    sh.refused(f"act {review['id']} approve --as lin.feng", "needs role sales_vp")
    inst = sh.js(f"act {review['id']} approve --as zhang.wei")
    assert sh.js("register show customer_credit 天山乳业")["credit_limit"] == "1500000"
    done = sh.js(f"act {inst['tasks'][0]['id']} approve --as lin.feng", now="2027-01-05T09:00")
    assert (done["status"], done["outcome"]) == ("completed", "approved")
    row = sh.js("register show customer_credit 天山乳业")
    assert (row["credit_limit"], row["term_days"], row["approved_by"]) == (
        "2000000",
        50,
        "lin.feng",
    )
    history = sh.js("register history customer_credit 天山乳业")
    assert [h["instance_id"] for h in history] == [None, inst["id"]]  # import, then approval
