"""customer_grading (第七条, 第八条, 第十二条): score bands at their edges, the weighted score at
exactly 8 and 5, the first-year rule, the strategic rating, the 会签 review, the grade written
to the credit table, and the year-end round that starts one grading per customer."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.decisions import evaluate
from engine.errors import ActionNotAllowed, DefinitionError, ExpressionError, InvalidData
from engine.org import Actor
from engine.registers import MemoryRegisters
from tests.cli.helpers import Shell

from . import Run, at, books, cli, compile_text, decisions_of, definition, source

D = Decimal
NOW = at("2026-12-31 10:00")
ESTABLISHED = "2020-03-01"


def grading(registers: MemoryRegisters | None = None, **figures: str) -> Run:
    data = {
        "customer": "天山乳业",
        "sales_amount": "8000000",
        "collection_rate": "80",
        "receivables": "200000",
        "strategic": "key",
        "first_trade_date": ESTABLISHED,
    } | figures
    mem = registers if registers is not None else MemoryRegisters()
    return Run.start("customer_grading", "ma.hui", NOW, registers=mem, **data)


def graded(registers: MemoryRegisters | None = None, **figures: str) -> Run:
    run = grading(registers, **figures)
    assert (run.state, run.role) == ("strategic_rating", "business_manager")
    return run.act("xu.ming", "rate")


# --------------------------------------------------------------------------- oracle


def oracle(amount: Decimal, rate: Decimal, receivables: Decimal, strategic: str) -> Decimal:
    """第七条 bands written independently of the YAML tables."""

    def amount_score() -> int:
        for floor, points in ((10_000_000, 10), (8_000_000, 8), (5_000_000, 6), (1_000_000, 4)):
            if amount >= floor:
                return points
        return 2

    def rate_score() -> int:
        for floor, points in ((100, 10), (80, 8), (50, 6), (30, 4)):
            if rate >= floor:
                return points
        return 2

    def receivables_score() -> int:
        for ceiling, points in ((10_000, 10), (200_000, 8), (800_000, 6), (2_000_000, 4)):
            if receivables <= ceiling:
                return points
        return 2

    strategic_points = {"leader": 10, "key": 8, "important": 6, "ordinary": 4, "sporadic": 2}
    weighted = (
        amount_score() * 30
        + rate_score() * 25
        + receivables_score() * 30
        + strategic_points[strategic] * 15
    )
    return D(weighted) / 100


def grade_of(score: Decimal, new: bool) -> str:
    if new:
        return "C"
    return "A" if score >= 8 else "B" if score >= 5 else "C"


# --------------------------------------------------------------------------- bands


@pytest.mark.parametrize(
    ("table", "value", "points"),
    [
        ("sales_amount_score", "10000000", 10),
        ("sales_amount_score", "9999999.99", 8),
        ("sales_amount_score", "8000000", 8),
        ("sales_amount_score", "7999999.99", 6),
        ("sales_amount_score", "5000000", 6),
        ("sales_amount_score", "4999999.99", 4),
        ("sales_amount_score", "1000000", 4),
        ("sales_amount_score", "999999.99", 2),
        ("sales_amount_score", "0", 2),
        ("collection_score", "100", 10),
        ("collection_score", "130", 10),
        ("collection_score", "99.99", 8),
        ("collection_score", "80", 8),
        ("collection_score", "79.99", 6),
        ("collection_score", "50", 6),
        ("collection_score", "49.99", 4),
        ("collection_score", "30", 4),
        ("collection_score", "29.99", 2),
        ("receivables_score", "0", 10),
        ("receivables_score", "10000", 10),
        ("receivables_score", "10000.01", 8),
        ("receivables_score", "200000", 8),
        ("receivables_score", "200000.01", 6),
        ("receivables_score", "800000", 6),
        ("receivables_score", "800000.01", 4),
        ("receivables_score", "2000000", 4),
        ("receivables_score", "2000000.01", 2),
    ],
)
def test_score_bands_at_their_edges(table: str, value: str, points: int) -> None:
    tables = definition("customer_grading").decisions
    (name,) = tables[table].inputs
    assert evaluate(tables[table], {name: D(value)}).outputs == {tables[table].outputs[0]: points}


def test_score_of_exactly_8_is_a() -> None:
    run = graded()  # every figure on the lower edge of its 8-point band
    v = run.vars
    assert (v["amount_score"], v["collection_score"], v["receivables_score"]) == (8, 8, 8)
    assert (v["strategic_score"], v["score"], v["grade"]) == (8, D("8.00"), "A")
    assert (v["credit_limit"], v["credit_term_days"]) == (D(2_000_000), 50)
    assert v["strategic_rated_by"] == "xu.ming" and v["new_customer"] is False


def test_score_just_below_8_is_b() -> None:
    run = graded(collection_rate="79.99")
    assert (run.vars["score"], run.vars["grade"]) == (D("7.50"), "B")


def test_score_of_exactly_5_is_b() -> None:
    run = graded(
        sales_amount="5000000", collection_rate="29.99", receivables="800000", strategic="important"
    )
    assert (run.vars["score"], run.vars["grade"]) == (D("5.00"), "B")
    assert run.vars["credit_limit"] == D(1_000_000)


def test_score_just_below_5_is_c() -> None:
    run = graded(
        sales_amount="5000000",
        collection_rate="29.99",
        receivables="800000.01",
        strategic="important",
    )
    assert (run.vars["score"], run.vars["grade"]) == (D("4.40"), "C")
    assert (run.vars["credit_limit"], run.vars["credit_term_days"]) == (D(0), 0)


@pytest.mark.parametrize(
    ("first_trade", "grading_date", "new"),
    [
        ("2025-12-31", "2026-12-31", False),  # exactly a year: established
        ("2026-01-01", "2026-12-31", True),  # one day short
        ("2024-02-29", "2025-02-28", False),  # art. 202: no 29 Feb, the month's last day
        ("2024-02-29", "2025-02-27", True),
        ("2026-06-30", "2026-12-31", True),
    ],
)
def test_customers_trading_less_than_a_year_are_c(
    first_trade: str, grading_date: str, new: bool
) -> None:
    run = graded(
        sales_amount="20000000",
        collection_rate="100",
        receivables="0",
        strategic="leader",
        first_trade_date=first_trade,
        grading_date=grading_date,
    )
    assert run.vars["score"] == D(10)
    assert run.vars["new_customer"] is new
    assert run.vars["grade"] == ("C" if new else "A")


def test_grading_date_defaults_to_the_start_day() -> None:
    assert grading().vars["grading_date"] == date(2026, 12, 31)


def test_scores_are_recorded_in_the_audit() -> None:
    run = graded()
    tables = [d["table"] for d in decisions_of(run)]
    assert tables == [
        "sales_amount_score",
        "collection_score",
        "receivables_score",
        "strategic_score",
        "customer_grade",
        "credit_policy",
    ]
    grade = next(d for d in decisions_of(run) if d["table"] == "customer_grade")
    assert grade["inputs"] == {"new_customer": False, "score": "8.00"}


@given(
    amount=st.decimals(min_value=0, max_value=30_000_000, places=2),
    rate=st.decimals(min_value=0, max_value=150, places=2),
    receivables=st.decimals(min_value=0, max_value=5_000_000, places=2),
    strategic=st.sampled_from(["leader", "key", "important", "ordinary", "sporadic"]),
    first_trade=st.dates(min_value=date(2015, 1, 1), max_value=date(2026, 12, 31)),
)
@settings(max_examples=150, deadline=None)
def test_property_grade_matches_the_policy(
    amount: Decimal, rate: Decimal, receivables: Decimal, strategic: str, first_trade: date
) -> None:
    run = graded(
        sales_amount=str(amount),
        collection_rate=str(rate),
        receivables=str(receivables),
        strategic=strategic,
        first_trade_date=first_trade.isoformat(),
    )
    score = oracle(amount, rate, receivables, strategic)
    anniversary = (first_trade.year + 1, first_trade.month, min(first_trade.day, 28))
    if (first_trade.month, first_trade.day) != (2, 29):
        anniversary = (first_trade.year + 1, first_trade.month, first_trade.day)
    new = anniversary > (2026, 12, 31)
    assert run.vars["score"] == score
    assert run.vars["grade"] == grade_of(score, new)


# --------------------------------------------------------------------------- steps


def test_missing_figures_go_to_data_entry_first() -> None:
    run = Run.start("customer_grading", "ma.hui", NOW, customer="新疆某经销商")
    assert (run.state, run.role) == ("data_entry", "sales_company")
    with pytest.raises(InvalidData, match="sales_amount: required by action 'submit'"):
        run.act("ma.hui", "submit")
    run.act(
        "ma.hui",
        "submit",
        sales_amount="1000000",
        collection_rate="50",
        receivables="10000",
        first_trade_date=ESTABLISHED,
    )
    assert run.state == "strategic_rating"
    with pytest.raises(InvalidData, match="strategic: required by action 'rate'"):
        run.act("he.jing", "rate")
    run.act("he.jing", "rate", strategic="ordinary")
    assert (run.vars["score"], run.vars["grade"]) == (D("6.30"), "B")  # 1.2 + 1.5 + 3.0 + 0.6


def test_the_rating_is_the_managers_and_not_the_requesters() -> None:
    run = grading(strategic="leader")
    with pytest.raises(ActionNotAllowed, match="needs role business_manager"):
        run.act("ma.hui", "rate")
    both = Actor("ma.hui", frozenset({"sales_company", "business_manager"}))
    with pytest.raises(ActionNotAllowed, match="the person who filed the grading may not rate"):
        run.act(both, "rate")
    run.act("zhang.wei", "rate", strategic="important")  # the manager overrides the proposal
    assert (run.vars["strategic"], run.vars["strategic_rated_by"]) == ("important", "zhang.wei")


def test_review_needs_both_sales_company_and_finance() -> None:
    run = graded()
    assert run.state == "review" and set(run.task.pending_roles) == {"sales_company", "finance"}
    run.act("deng.ping", "approve")
    assert run.state == "review" and run.task.pending_roles == ("sales_company",)
    with pytest.raises(ActionNotAllowed, match="deng.ping has already signed|needs role"):
        run.act("deng.ping", "approve")
    run.act("ma.hui", "approve")
    assert (run.status, run.outcome, run.vars["grade"]) == ("completed", "graded", "A")


def test_either_reviewer_can_send_it_back_and_it_is_rescored() -> None:
    run = graded()
    run.act("ma.hui", "approve")
    run.act("feng.xue", "reject", comment="回款率应为 60%")
    assert (run.state, run.role) == ("revise", "sales_company")
    run.act("ma.hui", "resubmit", collection_rate="60")
    assert run.state == "strategic_rating"
    run.act("xu.ming", "rate")
    assert (run.vars["score"], run.vars["grade"]) == (D("7.50"), "B")
    run.act("ma.hui", "approve").act("feng.xue", "approve")
    assert run.outcome == "graded"


def test_withdrawal_ends_it() -> None:
    run = graded()
    run.act("deng.ping", "reject", comment="客户已停止合作")
    run.act("ma.hui", "withdraw", comment="不再评级")
    assert (run.status, run.outcome) == ("completed", "withdrawn")


def signed(run: Run) -> Run:
    """Both reviewers approve (会签): the grading ends graded."""
    run.act("ma.hui", "approve").act("deng.ping", "approve")
    assert run.outcome == "graded"
    return run


def line(mem: MemoryRegisters, customer: str = "天山乳业") -> dict:
    row = mem.reader().get("customer_credit", customer)
    assert row is not None
    return dict(row.values)


def test_a_completed_grading_writes_the_grade_to_the_credit_table() -> None:
    mem = MemoryRegisters()
    run = signed(graded(mem))
    assert line(mem) == {
        "grade": "A",
        "score": "8.00",
        "graded_on": "2026-12-31",
        "first_trade_date": ESTABLISHED,
        # a customer new to the table has no credit until the credit table gives it one
        "credit_limit": "0",
        "term_days": 0,
    }
    [write] = [a for out in run.outcomes for a in out.audit if a.to_state == "graded"]
    assert write.data["register_writes"][0]["key"] == "天山乳业"


def test_a_new_grade_only_ever_cuts_the_credit_line_to_its_maximum() -> None:
    approved = {"grade": "A", "credit_limit": "1800000", "term_days": 45, "branch": "sales_north"}
    # A again: the approved line stays
    mem = books(customer_credit={"天山乳业": approved})
    signed(graded(mem))
    assert (line(mem)["credit_limit"], line(mem)["term_days"]) == ("1800000", 45)
    # down to B: cut to 1,000,000; the term (<= 50) stays
    mem = books(customer_credit={"天山乳业": approved})
    signed(graded(mem, sales_amount="1000000"))
    assert (line(mem)["grade"], line(mem)["credit_limit"], line(mem)["term_days"]) == (
        "B",
        "1000000",
        45,
    )
    assert line(mem)["branch"] == "sales_north"  # fields not written keep their value
    # a new customer (first year): C, no credit
    mem = books(customer_credit={"天山乳业": approved})
    signed(graded(mem, first_trade_date="2026-06-01"))
    assert (line(mem)["grade"], line(mem)["credit_limit"], line(mem)["term_days"]) == ("C", "0", 0)


def test_a_withdrawn_or_unfinished_grading_writes_nothing() -> None:
    mem = MemoryRegisters()
    run = graded(mem)
    run.act("deng.ping", "reject", comment="数据有误")
    run.act("ma.hui", "withdraw", comment="不再评级")
    assert mem.reader().keys("customer_credit") == []


ROUND_BOOKS = {
    "customer_credit": {
        "天山乳业": {"grade": "A", "first_trade_date": "2020-03-01", "credit_limit": "2000000"},
        "某超市": {"grade": "C", "first_trade_date": "2026-05-01"},
    },
    "receivables": {"天山乳业": {"balance": "350000"}},
}


def test_the_round_starts_one_grading_per_customer_and_waits_for_all() -> None:
    mem = books(**ROUND_BOOKS)
    run = Run.start(
        "customer_grading", "ma.hui", at("2026-12-31 09:00"), registers=mem, scope="round"
    )
    assert (run.status, run.state, run.snap.tasks) == ("active", "round_open", ())
    kids = run.spawned
    assert [(k.process, k.requester) for k in kids] == [("customer_grading", "ma.hui")] * 2
    # sorted by key; the year-end receivables and first trade date come from the registers
    assert [k.input for k in kids] == [
        {
            "scope": "customer",
            "customer": "天山乳业",
            "grading_date": "2026-12-31",
            "first_trade_date": "2020-03-01",
            "receivables": "350000",
        },
        {
            "scope": "customer",
            "customer": "某超市",
            "grading_date": "2026-12-31",
            "first_trade_date": "2026-05-01",
        },
    ]
    assert all(k.wait and k.on_parent_end == "cancel" for k in kids)
    run.child_finished(kids[0].child_id, "graded", variables={"grade": "A"})
    assert (run.status, run.state) == ("active", "round_open")
    run.child_finished(kids[1].child_id, "withdrawn", status="completed")
    assert (run.status, run.state, run.outcome) == ("completed", "round_closed", "closed")


def test_a_round_with_nobody_in_the_table_closes_at_once() -> None:
    run = Run.start(
        "customer_grading",
        "ma.hui",
        at("2026-12-31 09:00"),
        registers=MemoryRegisters(),
        scope="round",
    )
    assert (run.spawned, run.outcome) == ([], "closed")


def test_a_broken_score_table_is_refused_with_its_position() -> None:
    text = source("customer_grading").replace(
        '{receivables: "(10_000, 200_000]"}', '{receivables: "[10_000, 200_000]"}'
    )
    with pytest.raises(DefinitionError) as caught:
        compile_text(text, "customer_grading.yaml")
    messages = [str(p) for p in caught.value.problems]
    assert any(
        m.startswith("customer_grading.yaml:")
        and "rules[0] and rules[1] overlap for receivables=10000" in m
        for m in messages
    ), messages
    text = source("customer_grading").replace(
        '{new_customer: false, score: "[5, 8)"}', '{new_customer: false, score: "(5, 8)"}'
    )
    with pytest.raises(DefinitionError, match=r"no rule covers new_customer=false, score=5"):
        compile_text(text, "customer_grading.yaml")


def test_a_score_outside_the_table_domain_is_an_error_not_a_grade() -> None:
    table = definition("customer_grading").decisions["customer_grade"]
    with pytest.raises(ExpressionError, match="above its maximum 10"):
        evaluate(table, {"new_customer": False, "score": D("10.01")})


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def sh(db_url: str) -> Shell:
    return cli(db_url, "customer_grading", deployed_at="2026-12-01T10:00:00+08:00")


def test_cli_one_customer_graded_a(sh: Shell) -> None:
    inst = sh.js(
        [
            "start",
            "customer_grading",
            "--as",
            "ma.hui",
            "--set",
            "customer=天山乳业",
            "--set",
            "sales_amount=8000000",
            "--set",
            "collection_rate=80",
            "--set",
            "receivables=200000",
            "--set",
            "strategic=key",
            "--set",
            f"first_trade_date={ESTABLISHED}",
        ],
        now="2026-12-31T10:00:00+08:00",
    )
    [task] = inst["tasks"]
    assert task["role"] == "business_manager"
    inst = sh.js(f"act {task['id']} rate --as he.jing")
    review = inst["tasks"][0]
    assert review["mode"] == "all" and set(review["pending_roles"]) == {"sales_company", "finance"}
    sh.js(f"act {review['id']} approve --as ma.hui")
    done = sh.js(f"act {review['id']} approve --as deng.ping --set review_note=同意")
    assert (done["status"], done["outcome"]) == ("completed", "graded")
    v = done["variables"]
    assert (v["score"], v["grade"], v["credit_limit"], v["strategic_rated_by"]) == (
        "8.00",
        "A",
        "2000000",
        "he.jing",
    )


def test_cli_score_exactly_5_is_b_and_a_new_customer_is_c(sh: Shell) -> None:
    def run(first_trade: str) -> dict:
        inst = sh.js(
            [
                "start",
                "customer_grading",
                "--as",
                "ma.hui",
                "--set",
                "customer=某超市",
                "--set",
                "sales_amount=5000000",
                "--set",
                "collection_rate=29.99",
                "--set",
                "receivables=800000",
                "--set",
                f"first_trade_date={first_trade}",
                "--set",
                "grading_date=2026-12-31",
            ],
        )
        return sh.js(f"act {inst['tasks'][0]['id']} rate --as xu.ming --set strategic=important")

    assert (run(ESTABLISHED)["variables"]["grade"]) == "B"
    new = run("2026-05-01")["variables"]
    assert (new["score"], new["new_customer"], new["grade"]) == ("5.00", True, "C")


def test_cli_rejected_then_withdrawn(sh: Shell) -> None:
    inst = sh.js("start customer_grading --as ma.hui --set customer=某客户")
    task = inst["tasks"][0]
    assert inst["state"] == "data_entry"
    done = sh.js(["act", task["id"], "withdraw", "--as", "ma.hui", "--comment", "本年无交易"])
    assert (done["status"], done["outcome"]) == ("completed", "withdrawn")


def test_cli_a_graded_customer_is_in_the_credit_table(sh: Shell) -> None:
    inst = sh.js(
        "start customer_grading --as ma.hui --set customer=某客户 "
        "--set sales_amount=1000000 --set collection_rate=100 --set receivables=0 "
        "--set strategic=leader --set first_trade_date=2020-01-01"
    )
    inst = sh.js(f"act {inst['tasks'][0]['id']} rate --as xu.ming")
    review = inst["tasks"][0]["id"]
    sh.js(f"act {review} approve --as ma.hui")
    sh.js(f"act {review} approve --as deng.ping")
    [row] = sh.js("register show customer_credit")
    assert (row["customer"], row["grade"], row["credit_limit"], row["term_days"]) == (
        "某客户",
        "A",  # 4*0.3 + 10*0.25 + 10*0.3 + 10*0.15 = 8.2
        "0",
        0,
    )
    [version] = sh.js("register history customer_credit 某客户")
    assert version["instance_id"] == inst["id"]


def test_cli_year_end_round_grades_every_customer_in_the_table(sh: Shell, tmp_path: Path) -> None:
    book = tmp_path / "credit.csv"
    book.write_text(
        "customer,grade,first_trade_date,credit_limit,term_days\n"
        "天山乳业,A,2020-03-01,2000000,50\n"
        "某超市,B,2021-05-01,800000,40\n",
        encoding="utf-8",
    )
    sh.ok(f"register import customer_credit {book} --as ma.hui", now="2026-12-01T10:00:00+08:00")
    assert sh.js("tick", now="2026-12-31T08:59:00+08:00")["scheduled_starts"] == []
    report = sh.js("tick", now="2026-12-31T09:00:30+08:00")
    [started] = report["scheduled_starts"]
    round_ = sh.js(f"show {started}")
    assert (round_["state"], round_["variables"]["scope"], round_["requester"]) == (
        "round_open",
        "round",
        "ma.hui",
    )
    assert sh.js("tick", now="2026-12-31T10:00:00+08:00")["scheduled_starts"] == []
    # one grading per customer, waiting for the sales company's figures
    tasks = sh.js("tasks --as ma.hui")
    assert len(tasks) == 2
    by_customer = {}
    for task in tasks:
        child = sh.js(f"show {task['instance_id']}")
        assert (child["state"], child["variables"]["grading_date"]) == ("data_entry", "2026-12-31")
        by_customer[child["variables"]["customer"]] = task
    assert sorted(by_customer) == ["天山乳业", "某超市"]
    # 某超市 is not graded this year; 天山乳业 is, to B
    sh.js(
        ["act", by_customer["某超市"]["id"], "withdraw", "--as", "ma.hui", "--comment", "停止合作"]
    )
    assert sh.js(f"show {started}")["status"] == "active"
    inst = sh.js(
        f"act {by_customer['天山乳业']['id']} submit --as ma.hui --set sales_amount=5000000 "
        "--set collection_rate=80 --set receivables=300000 --set strategic=important"
    )
    inst = sh.js(f"act {inst['tasks'][0]['id']} rate --as xu.ming")
    review = inst["tasks"][0]["id"]
    sh.js(f"act {review} approve --as ma.hui")
    sh.js(f"act {review} approve --as deng.ping")
    done = sh.js(f"show {started}")
    assert (done["status"], done["outcome"]) == ("completed", "closed")
    row = sh.js("register show customer_credit 天山乳业")
    # 6*0.3 + 8*0.25 + 6*0.3 + 6*0.15 = 6.5: B; the line is cut to the B maximum
    assert (row["grade"], row["credit_limit"], row["term_days"]) == ("B", "1000000", 50)
    assert sh.js("register show customer_credit 某超市")["grade"] == "B"  # not regraded
