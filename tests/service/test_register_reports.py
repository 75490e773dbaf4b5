"""Owner reports over a register: the bad-debt book as it stood at a period's end.

The test keeps its own copy of the book (the rows it imports, month by month) and
computes every figure from it, never from the report code; the report reads the
register's history in the store.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cli.helpers import PROCESSES, Shell

COLUMNS = "voucher_no,customer,branch,amount,booked_on,recovered_total,remaining,status"
OCTOBER = [  # imported on 2026-10-15: the initial book
    "HX-001,华北乳业,north_branch,120000.00,2026-09-30,0,120000.00,collecting",
    "HX-002,南方商贸,south_branch,45000.50,2026-10-08,0,45000.50,collecting",
    "HX-003,东方食品,north_branch,8000.00,2026-08-20,8000.00,0,recovered",
]
NOVEMBER = [  # imported on 2026-11-10: HX-002 part recovered, HX-004 written off
    "HX-002,南方商贸,south_branch,45000.50,2026-10-08,5000.00,40000.50,collecting",
    "HX-004,西部物流,south_branch,30000.00,2026-11-09,0,30000.00,collecting",
]
OCT = "--from 2026-10-01 --to 2026-11-01"
NOV = "--from 2026-11-01 --to 2026-12-01"


@pytest.fixture
def sh(db_url: str, tmp_path: Path) -> Shell:
    shell = Shell(db_url, PROCESSES)
    shell.ok("deploy", now="2026-10-01T09:00:00+08:00")
    for when, rows in (("2026-10-15", OCTOBER), ("2026-11-10", NOVEMBER)):
        path = tmp_path / f"{when}.csv"
        path.write_text("\n".join([COLUMNS, *rows]) + "\n", encoding="utf-8")
        shell.ok(f"register import bad_debts {path} --as deng.ping", now=f"{when}T10:00:00+08:00")
    return shell


def book_at(*months: list[str]) -> dict[str, dict[str, str]]:
    """The test's own book: each import's rows replace the rows with their key."""
    rows: dict[str, dict[str, str]] = {}
    for month in months:
        for line in month:
            row = dict(zip(COLUMNS.split(","), line.split(","), strict=True))
            rows[row["voucher_no"]] = row
    return rows


def by_branch(rows: dict[str, dict[str, str]], touched: set[str], new: set[str]) -> dict:
    out: dict[str, dict[str, object]] = defaultdict(
        lambda: {"rows": 0, "added": 0, "changed": 0, "amount": Decimal(0), "remaining": Decimal(0)}
    )
    for key, row in rows.items():
        group = out[row["branch"]]
        group["rows"] += 1  # type: ignore[operator]
        group["added"] += key in new  # type: ignore[operator]
        group["changed"] += key in touched  # type: ignore[operator]
        group["amount"] += Decimal(row["amount"])  # type: ignore[operator]
        group["remaining"] += Decimal(row["remaining"])  # type: ignore[operator]
    return dict(out)


def sections(sh: Shell, period: str) -> dict[str, list[dict[str, object]]]:
    shown = sh.js(f"report bad_debt_book {period}", now="2026-12-02T09:00:00+08:00")
    return {s["title"]: s["rows"] for s in shown["sections"]}


def test_the_book_at_the_end_of_each_month_by_branch(sh: Shell) -> None:
    for period, book, touched, new in (
        (OCT, book_at(OCTOBER), {"HX-001", "HX-002", "HX-003"}, {"HX-001", "HX-002", "HX-003"}),
        (NOV, book_at(OCTOBER, NOVEMBER), {"HX-002", "HX-004"}, {"HX-004"}),
    ):
        expected = by_branch(book, touched, new)
        found = sections(sh, period)
        branches = found["按分公司 (by branch)"]
        assert {r["branch"] for r in branches} == set(expected), period
        for row in branches:
            want = expected[str(row["branch"])]
            assert (row["rows"], row["added"], row["changed"]) == (
                want["rows"],
                want["added"],
                want["changed"],
            ), (period, row)
            assert Decimal(str(row["sum_amount"])) == want["amount"]
            assert Decimal(str(row["sum_remaining"])) == want["remaining"]
        [total] = found["合计 (totals)"]
        assert total["rows"] == len(book) and total["changed"] == len(touched)
        assert Decimal(str(total["sum_remaining"])) == sum(
            (Decimal(r["remaining"]) for r in book.values()), Decimal(0)
        )


def test_by_status_reads_the_values_as_they_stood_then(sh: Shell) -> None:
    """October's report shows HX-002 with its October remainder, not November's."""
    october = {
        r["status"]: r
        for r in sections(sh, OCT)["按状态 (by status: collecting 继续催收 / recovered / closed)"]
    }
    assert Decimal(str(october["collecting"]["sum_remaining"])) == Decimal("165000.50")
    assert october["recovered"]["rows"] == 1
    november = {
        r["status"]: r
        for r in sections(sh, NOV)["按状态 (by status: collecting 继续催收 / recovered / closed)"]
    }
    assert Decimal(str(november["collecting"]["sum_remaining"])) == Decimal("190000.50")


def test_a_month_before_the_book_existed_is_empty(sh: Shell) -> None:
    [total] = sections(sh, "--from 2026-09-01 --to 2026-10-01")["合计 (totals)"]
    assert (total["rows"], total["added"], total["changed"]) == (0, 0, 0)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("    group_by: [{field: branch}]", "    group_by: [{field: brunch}]"),
            "no field 'brunch'",
        ),
        (("    sum: [remaining]", "    sum: [status]"), "'status' is not a number"),
        (("measures: [rows, changed]", "measures: [rows, on_time]"), "not a measure of a register"),
        (("source: {register: bad_debts}", "source: {register: bad_debtz}"), "unknown register"),
    ],
)
def test_a_bad_register_report_names_the_line(
    sqlite_url: str, tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    import shutil

    procs = tmp_path / "processes"
    shutil.copytree(PROCESSES, procs)
    path = procs / "reports" / "bad_debt_book.yaml"
    text = path.read_text(encoding="utf-8")
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")
    res = Shell(sqlite_url, procs)(f"validate {procs}")
    assert res.code == 1 and message in res.err and "bad_debt_book.yaml:" in res.err, res.err
