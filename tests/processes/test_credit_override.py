"""credit_override (第十条, 第十一条, 第十二条): the routing figures come from the credit table
(register customer_credit), never from the requester; every request reaches the approver
the policy names, exactly at the band edges, and every end state is reachable from the CLI."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.errors import (
    ActionNotAllowed,
    DefinitionError,
    InvalidData,
    StartRefused,
    WorkflowError,
)
from engine.org import Actor
from engine.registers import MemoryRegisters
from tests.cli.helpers import Shell

from . import PROCESSES, Run, at, books, cli, compile_text, decisions_of, definition, source

D = Decimal
NOW = at("2026-10-12 10:00")
LIMITS = {"A": D(2_000_000), "B": D(1_000_000), "C": D(0)}
CUSTOMER = "天山乳业"


def table(
    grade: str, limit: Decimal | str | None = None, term: int | None = None
) -> MemoryRegisters:
    """The credit table with one line for CUSTOMER: ``limit`` defaults to the grade's
    maximum, ``term`` to 50 days (0 for C)."""
    row: dict[str, Any] = {
        "grade": grade,
        "credit_limit": str(LIMITS[grade] if limit is None else limit),
        "term_days": term if term is not None else (0 if grade == "C" else 50),
        "branch": "sales_north",
    }
    return books(customer_credit={CUSTOMER: row})


def request(
    grade: str,
    requested: str,
    user: str | Actor = "liu.yang",
    limit: Decimal | str | None = None,
    contract_amount: str | None = None,
    **start: str,
) -> Run:
    """The requester files the request for CUSTOMER, whose line in the credit table has
    ``grade`` and ``limit``; for a C customer asking for credit, finance (deng.ping)
    confirms ``contract_amount`` when it is given."""
    run = Run.start(
        "credit_override",
        user,
        NOW,
        registers=table(grade, limit),
        customer=CUSTOMER,
        requested_credit=requested,
        **start,
    )
    if run.state == "contract_check":
        assert run.role == "finance"
        if contract_amount is not None:
            run.act("deng.ping", "confirm", contract_amount=contract_amount)
    return run


def policy_role(grade: str, requested: Decimal, limit: Decimal, contract: Decimal) -> str | None:
    """第十一条 as written, in whole fen and without division: the test oracle."""
    if requested <= limit:
        return None
    if grade == "C":  # the credit as a share of the contract: requested / contract <= pct %
        if requested * 100 <= 20 * contract:
            return "sales_vp"
        return "general_manager" if requested * 100 <= 50 * contract else "gm_office_meeting"
    if limit == 0:
        return "gm_office_meeting"
    over = (requested - limit) * 100  # over / limit <= pct %, compared without dividing
    first, second = (30, 50) if grade == "A" else (20, 30)
    if over <= first * limit:
        return "sales_vp"
    return "general_manager" if over <= second * limit else "gm_office_meeting"


def routed_role(grade: str, requested: str, contract: str = "1000000", **extra: Any) -> Run:
    run = request(grade, requested, contract_amount=contract, **extra)
    if grade == "C" and run.state == "c_preapproval":
        assert run.role == "sales_vp"
        run.act("zhang.wei", "approve")
    return run


# --------------------------------------------------------------------------- boundaries


@pytest.mark.parametrize(
    ("grade", "requested", "role"),
    [
        # A, limit 2,000,000: 30 % over is 2,600,000; 50 % over is 3,000,000
        ("A", "2000000.01", "sales_vp"),
        ("A", "2600000", "sales_vp"),
        ("A", "2600000.01", "general_manager"),
        ("A", "2600001", "general_manager"),
        ("A", "3000000", "general_manager"),
        ("A", "3000001", "gm_office_meeting"),
        ("A", "90000000", "gm_office_meeting"),
        # B, limit 1,000,000: 20 % over is 1,200,000; 30 % over is 1,300,000
        ("B", "1000001", "sales_vp"),
        ("B", "1200000", "sales_vp"),
        ("B", "1200001", "general_manager"),
        ("B", "1300000", "general_manager"),
        ("B", "1300001", "gm_office_meeting"),
        # C, contract 1,000,000: 20 % is 200,000; 50 % is 500,000
        ("C", "0.01", "sales_vp"),
        ("C", "200000", "sales_vp"),
        ("C", "200001", "general_manager"),
        ("C", "500000", "general_manager"),
        ("C", "500001", "gm_office_meeting"),
    ],
)
def test_boundaries_route_as_written(grade: str, requested: str, role: str) -> None:
    run = routed_role(grade, requested)
    assert (run.state, run.role) == ("approval", role)
    assert run.vars["approver_role"] == role
    assert policy_role(grade, D(requested), LIMITS[grade], D(1_000_000)) == role


def test_exact_percentages_are_not_rounded() -> None:
    run = routed_role("A", "2600000.01")
    assert run.vars["excess_pct"] == D("30.0000005")
    assert run.vars["excess_amount"] == D("600000.01")
    run = routed_role("C", "200000.01")
    assert run.vars["contract_share_pct"] == D("20.000001")


@pytest.mark.parametrize(
    ("grade", "requested", "term"), [("A", "2000000", 50), ("B", "1000000", 50), ("C", "0", None)]
)
def test_within_the_limit_is_approved_at_once(grade: str, requested: str, term: int | None) -> None:
    run = request(grade, requested)
    assert (run.status, run.state, run.outcome) == ("completed", "within_limit", "approved")
    assert run.snap.tasks == () and run.pending() == []
    assert run.vars["credit_limit"] == LIMITS[grade]
    # the term is the credit table's; a C customer has none
    assert run.vars["credit_term_days"] == term


def test_the_limit_in_the_credit_table_decides() -> None:
    run = request("A", "650000", limit="500000")
    assert run.vars["credit_limit"] == D(500_000) and run.vars["excess_pct"] == D(30)
    assert run.role == "sales_vp"
    assert request("B", "650001", limit="500000").role == "gm_office_meeting"
    assert request("B", "900000", limit="1000000").outcome == "approved"
    # the term within the limit is the table's
    run = Run.start(
        "credit_override",
        "liu.yang",
        NOW,
        registers=table("A", "900000", term=30),
        customer=CUSTOMER,
        requested_credit="900000",
    )
    assert (run.outcome, run.vars["credit_term_days"]) == ("approved", 30)


@pytest.mark.parametrize(
    ("limit", "requested", "role"),
    [
        # A customer whose table limit is 1,000,000: 30 % over is 1,300,000, 50 % 1,500,000
        ("1000000", "1300000", "sales_vp"),
        ("1000000", "1300000.01", "general_manager"),
        ("1000000", "1500000", "general_manager"),
        ("1000000", "1500000.01", "gm_office_meeting"),
    ],
)
def test_boundaries_on_a_limit_below_the_grade_maximum(
    limit: str, requested: str, role: str
) -> None:
    run = request("A", requested, limit=limit)
    assert (run.state, run.role) == ("approval", role)
    assert policy_role("A", D(requested), D(limit), D(1)) == role


def test_a_or_b_customer_with_a_zero_limit_goes_to_the_gm_office_meeting() -> None:
    run = request("B", "1", limit="0")
    assert (run.state, run.role, run.vars["excess_pct"]) == ("approval", "gm_office_meeting", None)


def test_the_decision_and_its_inputs_are_in_the_audit() -> None:
    run = routed_role("B", "1250000")
    [decision] = decisions_of(run)
    assert decision == {
        "table": "override_by_excess",
        "rule": 5,
        "inputs": {"grade": "B", "excess_pct": "25"},
        "outputs": {"approver_role": "general_manager"},
    }
    run = routed_role("C", "600000", contract="1000000")
    [decision] = decisions_of(run)
    assert decision["table"] == "override_c_by_contract_share" and decision["rule"] == 3
    assert decision["inputs"] == {"contract_share_pct": "60"}


@given(
    grade=st.sampled_from(["A", "B", "C"]),
    requested_fen=st.integers(min_value=1, max_value=10_000_000_000),
    limit_fen=st.one_of(st.none(), st.integers(min_value=0, max_value=200_000_000)),
    contract_fen=st.integers(min_value=1, max_value=10_000_000_000),
)
@example(grade="A", requested_fen=260_000_000, limit_fen=None, contract_fen=1)
@example(grade="A", requested_fen=300_000_000, limit_fen=None, contract_fen=1)
@example(grade="B", requested_fen=120_000_000, limit_fen=None, contract_fen=1)
@example(grade="B", requested_fen=130_000_000, limit_fen=None, contract_fen=1)
@example(grade="B", requested_fen=130, limit_fen=100, contract_fen=1)
@example(grade="C", requested_fen=20_000_000, limit_fen=None, contract_fen=100_000_000)
@example(grade="C", requested_fen=50_000_000, limit_fen=None, contract_fen=100_000_000)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_property_the_approver_is_the_one_the_policy_names(
    grade: str, requested_fen: int, limit_fen: int | None, contract_fen: int
) -> None:
    requested = D(requested_fen).scaleb(-2)
    contract = D(contract_fen).scaleb(-2)
    # the credit table holds any limit up to the grade's maximum (第十条)
    limit = LIMITS[grade] if limit_fen is None else min(D(limit_fen).scaleb(-2), LIMITS[grade])
    expected = policy_role(grade, requested, limit, contract)
    run = routed_role(grade, str(requested), contract=str(contract), limit=limit)
    if expected is None:
        assert (run.outcome, run.vars["approved_credit"]) == ("approved", requested)
    else:
        assert (run.state, run.role) == ("approval", expected)


@given(pct=st.decimals(min_value=0, max_value=200, places=6))
@example(pct=D(20))
@example(pct=D(30))
@example(pct=D(50))
@example(pct=D("30.000001"))
@settings(max_examples=200, deadline=None)
def test_property_table_bands_on_exact_percentages(pct: Decimal) -> None:
    from engine.decisions import evaluate

    tables = definition("credit_override").decisions
    a = evaluate(tables["override_by_excess"], {"grade": "A", "excess_pct": pct}).outputs
    b = evaluate(tables["override_by_excess"], {"grade": "B", "excess_pct": pct}).outputs
    c = evaluate(tables["override_c_by_contract_share"], {"contract_share_pct": pct}).outputs

    def band(first: int, second: int) -> str:
        if pct <= first:
            return "sales_vp"
        return "general_manager" if pct <= second else "gm_office_meeting"

    assert a["approver_role"] == band(30, 50)
    assert b["approver_role"] == band(20, 30)
    assert c["approver_role"] == band(20, 50)


# --------------------------------------------------------------------------- steps


def test_c_needs_the_contract_amount_from_finance_before_routing() -> None:
    run = request("C", "100000")
    assert (run.state, run.role, run.vars["grade"]) == ("contract_check", "finance", "C")
    with pytest.raises(InvalidData, match="contract_amount: required by action 'confirm'"):
        run.act("deng.ping", "confirm")
    with pytest.raises(InvalidData, match="contract_amount: must be at least 0.01"):
        run.act("deng.ping", "confirm", contract_amount="0")
    run.act("deng.ping", "confirm", contract_amount="400000")
    assert (run.state, run.role, run.vars["contract_share_pct"]) == (
        "c_preapproval",
        "sales_vp",
        D(25),
    )
    # the VP pre-approves; the figure that routes the amount is finance's, not the VP's
    with pytest.raises(InvalidData, match="contract_amount: cannot be set by action 'approve'"):
        run.act("zhang.wei", "approve", contract_amount="4000000")
    run.act("zhang.wei", "approve")
    assert (run.role, run.vars["contract_share_pct"]) == ("general_manager", D(25))


def test_a_c_request_of_nothing_needs_no_contract_check() -> None:
    run = request("C", "0")
    assert (run.state, run.outcome) == ("within_limit", "approved")


def test_c_preapproval_refused_ends_rejected() -> None:
    run = request("C", "100000", contract_amount="1000000")
    with pytest.raises(ActionNotAllowed, match="a comment is required"):
        run.act("zhang.wei", "reject")
    run.act("zhang.wei", "reject", comment="C 级客户原则上不赊销")
    assert (run.status, run.outcome, run.vars["approver_role"]) == ("completed", "rejected", None)


def test_the_approver_may_grant_less_within_bounds() -> None:
    run = routed_role("A", "2500000")
    with pytest.raises(ActionNotAllowed, match="must be above the current limit"):
        run.act("zhang.wei", "approve", approved_credit="2000000")
    with pytest.raises(ActionNotAllowed, match="at most the amount"):
        run.act("zhang.wei", "approve", approved_credit="2500000.01")
    with pytest.raises(InvalidData, match="credit_term_days: must be at most 50"):
        run.act("zhang.wei", "approve", credit_term_days="60")
    run.act("zhang.wei", "approve", approved_credit="2300000", credit_term_days="30")
    assert run.outcome == "approved"
    assert (run.vars["approved_credit"], run.vars["credit_term_days"]) == (D(2_300_000), 30)


def test_only_the_named_role_approves() -> None:
    run = routed_role("A", "2800000")
    assert run.role == "general_manager"
    with pytest.raises(ActionNotAllowed, match="needs role general_manager"):
        run.act("zhang.wei", "approve")


def test_approvers_cannot_file_requests() -> None:
    with pytest.raises(WorkflowError, match="zhang.wei may not start credit_override"):
        request("A", "2800000", user="zhang.wei")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"requested_credit": "-1"}, "requested_credit: must be at least 0"),
        ({"requested_credit": "1.001"}, "at most 2 decimal places"),
    ],
)
def test_bad_input_is_refused(data: dict[str, str], match: str) -> None:
    base = {"customer": CUSTOMER, "requested_credit": "1"} | data
    with pytest.raises(InvalidData, match=match):
        Run.start("credit_override", "liu.yang", NOW, registers=table("A"), **base)


# --------------------------------------------------------------------------- who sets the figures


@pytest.mark.parametrize(
    "figures",
    [
        {"credit_limit": "5000000"},
        {"grade": "A"},
        {"contract_amount": "10000000"},
        {"grade": "C", "credit_limit": "500000"},
    ],
)
def test_the_requester_cannot_give_the_figures_that_route(figures: dict[str, str]) -> None:
    with pytest.raises(InvalidData, match=r"cannot be set by start; it accepts: "):
        Run.start(
            "credit_override",
            "liu.yang",
            NOW,
            registers=table("A"),
            customer=CUSTOMER,
            requested_credit="5000000",
            **figures,
        )


@pytest.mark.parametrize(
    "rows",
    [
        {},  # nobody in the table
        {"别的客户": {"grade": "A", "credit_limit": "2000000", "term_days": 50}},
        {CUSTOMER: {"grade": "A"}},  # graded, but no credit line compiled yet
    ],
)
def test_a_customer_without_a_line_in_the_credit_table_is_refused(rows: dict) -> None:
    with pytest.raises(StartRefused, match="compile the credit table first"):
        Run.start(
            "credit_override",
            "liu.yang",
            NOW,
            registers=books(customer_credit=rows),
            customer=CUSTOMER,
            requested_credit="100000",
        )


def test_the_figures_are_the_tables_and_the_start_records_its_version() -> None:
    run = request("A", "5000000")
    assert (run.vars["grade"], run.vars["credit_limit"], run.vars["table_term_days"]) == (
        "A",
        D(2_000_000),
        50,
    )
    start = run.outcomes[0].audit[0]
    assert start.action == "start"
    assert start.data["registers_read"]["customer_credit"] == 1


def test_a_limit_above_the_grades_maximum_in_the_table_is_capped() -> None:
    # a B line of 2,000,000 (e.g. left over from an A year): the B maximum counts
    run = request("B", "1300000", limit="2000000")
    assert run.vars["credit_limit"] == D(1_000_000)
    assert (run.role, run.vars["excess_pct"]) == ("general_manager", D(30))


def test_bypass_a_5000000_request_goes_to_the_gm_office_meeting() -> None:
    # was: start with requested_credit=5000000 credit_limit=5000000 -> approved, no approver
    run = request("A", "5000000")
    # 3,000,000 over 2,000,000 is 150 %: above 50 %, the GM office meeting (第十一条.1)
    assert (run.status, run.state, run.role) == ("active", "approval", "gm_office_meeting")
    assert run.vars["excess_pct"] == D(150)


def test_bypass_a_c_customer_cannot_skip_the_preapproval() -> None:
    # was: grade=C credit_limit=500000 requested_credit=500000 -> approved at once
    run = request("C", "500000", contract_amount="2000000")
    assert (run.state, run.role) == ("c_preapproval", "sales_vp")
    run.act("zhang.wei", "approve")
    # 500,000 of a 2,000,000 contract is 25 %: (20 %, 50 %] -> GM (第十一条.3)
    assert (run.state, run.role, run.vars["contract_share_pct"]) == (
        "approval",
        "general_manager",
        D(25),
    )


def test_a_running_request_keeps_what_it_read_a_new_one_reads_the_new_table() -> None:
    mem = table("A", "2000000")
    first = Run.start(
        "credit_override",
        "liu.yang",
        NOW,
        registers=mem,
        customer=CUSTOMER,
        requested_credit="2500000",
    )
    assert (first.role, first.vars["excess_pct"]) == ("sales_vp", D(25))
    # the GM approves a lower line: 1,000,000
    mem.write("customer_credit", CUSTOMER, {"credit_limit": "1000000"}, at("2026-10-12 11:00"))
    second = Run.start(
        "credit_override",
        "huang.tao",
        NOW,
        registers=mem,
        customer=CUSTOMER,
        requested_credit="2500000",
    )
    assert (second.role, second.vars["credit_limit"]) == ("gm_office_meeting", D(1_000_000))
    assert second.outcomes[0].audit[0].data["registers_read"]["customer_credit"] == 2
    # the first goes on with the figures it read when it was filed
    first.act("zhang.wei", "approve", now=at("2026-10-12 12:00"))
    assert (first.outcome, first.vars["credit_limit"]) == ("approved", D(2_000_000))


# a user who may file requests and also holds the role that finance or approval needs
SELLER_VP = Actor("sam", frozenset({"salesperson", "sales_vp"}))
SELLER_FINANCE = Actor("fay", frozenset({"sales_company", "finance"}))
SELLER_GM = Actor("gil", frozenset({"branch_manager", "general_manager"}))


def test_a_requester_with_the_approving_role_may_not_approve_it() -> None:
    run = request("A", "2500000", user=SELLER_VP)
    assert run.role == "sales_vp"
    for action in ("approve", "reject"):
        with pytest.raises(ActionNotAllowed, match="four-eyes rule: sam requested this"):
            run.act(SELLER_VP, action, comment="x")
    run.act("zhang.wei", "approve")
    assert run.outcome == "approved"

    run = request("A", "2800000", user=SELLER_GM)
    assert run.role == "general_manager"
    with pytest.raises(ActionNotAllowed, match="four-eyes rule: gil requested this"):
        run.act(SELLER_GM, "approve")


def test_a_requester_with_the_vp_role_may_not_preapprove_their_c_request() -> None:
    run = request("C", "100000", user=SELLER_VP, contract_amount="1000000")
    with pytest.raises(ActionNotAllowed, match="four-eyes rule: sam requested this"):
        run.act(SELLER_VP, "approve")
    run.act("zhang.wei", "approve")
    # the VP who pre-approved also approves the amount (第十一条.3): not kept out
    assert run.role == "sales_vp"
    run.act("zhang.wei", "approve")
    assert run.outcome == "approved"


def test_a_requester_in_finance_may_not_confirm_their_own_contract_amount() -> None:
    run = request("C", "250000", user=SELLER_FINANCE)
    with pytest.raises(ActionNotAllowed, match="four-eyes rule: fay requested this"):
        run.act(SELLER_FINANCE, "confirm", contract_amount="10000000")
    assert run.state == "contract_check"


# --------------------------------------------------------------------------- broken tables


def _problems(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        compile_text(text, "credit_override.yaml")
    return [str(p) for p in caught.value.problems]


def _line_col(text: str, needle: str) -> tuple[int, int]:
    at_ = text.index(needle)
    line = text.count("\n", 0, at_) + 1
    return line, at_ - (text.rfind("\n", 0, at_) + 1) + 1


def test_validator_reports_an_overlap_at_its_rules() -> None:
    text = source("credit_override").replace(
        '{grade: A, excess_pct: "(30, 50]"}', '{grade: A, excess_pct: "[30, 50]"}'
    )
    problems = _problems(text)
    line, _ = _line_col(text, '{grade: A, excess_pct: "[0, 30]"}')
    assert any(
        p.startswith(f"credit_override.yaml:{line}:")
        and "rules[0] and rules[1] overlap for grade=A, excess_pct=30" in p
        for p in problems
    ), problems


def test_validator_reports_a_gap_with_its_position() -> None:
    text = source("credit_override").replace(
        '{grade: B, excess_pct: "> 30"}', '{grade: B, excess_pct: "> 31"}'
    )
    problems = _problems(text)
    assert any(
        "no rule covers grade=B, excess_pct in (30, 31]; add a rule for it" in p for p in problems
    ), problems
    assert all(
        p.startswith("credit_override.yaml:") and p.split(":")[1].isdigit() for p in problems
    )


def test_validator_reports_a_gap_in_the_c_table() -> None:
    text = source("credit_override").replace(
        '{contract_share_pct: "(20, 50]"}', '{contract_share_pct: "(20, 50)"}'
    )
    problems = _problems(text)
    assert any("no rule covers contract_share_pct=50" in p for p in problems), problems


# --------------------------------------------------------------------------- CLI

TABLE_CSV = (
    "customer,grade,credit_limit,term_days,branch\n"
    "天山乳业,A,2000000,50,sales_north\n"
    "某乳品厂,B,1000000,45,sales_south\n"
    "某超市,C,0,0,sales_south\n"
)
FOR_GRADE = {"A": "天山乳业", "B": "某乳品厂", "C": "某超市"}


def import_table(sh: Shell, folder: Path, text: str = TABLE_CSV) -> None:
    """The credit table's initial book, imported by the sales company (audited)."""
    path = folder / "customer_credit.csv"
    path.write_text(text, encoding="utf-8")
    sh.ok(
        f"register import customer_credit {path} --as ma.hui --comment 2026年信用明细表",
        now="2026-10-01T09:00:00+08:00",
    )


@pytest.fixture
def sh(db_url: str, tmp_path: Path) -> Shell:
    shell = cli(db_url, "credit_override")
    import_table(shell, tmp_path)
    return shell


def cli_start(
    sh: Shell, grade: str, requested: str, contract: str = "", user: str = "liu.yang"
) -> dict:
    """``user`` files a request for the table's customer of ``grade``; for a C customer
    asking for credit, finance (deng.ping) confirms the ``contract`` amount."""
    inst = sh.js(
        [
            "start",
            "credit_override",
            "--as",
            user,
            "--set",
            f"customer={FOR_GRADE[grade]}",
            "--set",
            f"requested_credit={requested}",
        ],
        now="2026-10-12T10:00:00+08:00",
    )
    if inst["state"] != "contract_check":
        return inst
    [check] = inst["tasks"]
    assert check["role"] == "finance"
    return sh.js(
        f"act {check['id']} confirm --as deng.ping --set contract_amount={contract}",
        now="2026-10-12T11:00:00+08:00",
    )


def test_cli_a_override_approved_by_the_gm(sh: Shell) -> None:
    inst = cli_start(sh, "A", "2800000")
    [task] = inst["tasks"]
    assert (inst["state"], task["role"], inst["variables"]["excess_pct"]) == (
        "approval",
        "general_manager",
        "40",
    )
    assert [t["id"] for t in sh.js("tasks --as lin.feng")] == [task["id"]]
    assert sh.js("tasks --as zhang.wei") == []
    sh.refused(f"act {task['id']} approve --as zhang.wei", "needs role general_manager")
    done = sh.js(f"act {task['id']} approve --as lin.feng --set approval_note=同意")
    assert (done["status"], done["outcome"], done["tasks"]) == ("completed", "approved", [])
    assert done["variables"]["approved_credit"] == "2800000"
    assert done["variables"]["credit_term_days"] == 50
    trail = sh.js(f"audit --instance {inst['id']}")
    routed = [e for e in trail if e["action"] == "route" and "decisions" in e["data"]]
    assert routed[0]["data"]["decisions"][0]["outputs"] == {"approver_role": "general_manager"}


@pytest.mark.parametrize(
    ("grade", "requested", "role"),
    [
        ("A", "2600000", "sales_vp"),
        ("A", "2600001", "general_manager"),
        ("A", "3000000", "general_manager"),
        ("A", "3000001", "gm_office_meeting"),
        ("B", "1200000", "sales_vp"),
        ("B", "1200001", "general_manager"),
        ("B", "1300000", "general_manager"),
        ("B", "1300001", "gm_office_meeting"),
    ],
)
def test_cli_ab_boundaries(sh: Shell, grade: str, requested: str, role: str) -> None:
    inst = cli_start(sh, grade, requested)
    assert [t["role"] for t in inst["tasks"]] == [role]


@pytest.mark.parametrize(
    ("credit", "role"),
    [
        ("200000", "sales_vp"),
        ("200001", "general_manager"),
        ("500000", "general_manager"),
        ("500001", "gm_office_meeting"),
    ],
)
def test_cli_c_boundaries_after_preapproval(sh: Shell, credit: str, role: str) -> None:
    inst = cli_start(sh, "C", credit, contract="1000000")
    [pre] = inst["tasks"]
    assert (inst["state"], pre["role"]) == ("c_preapproval", "sales_vp")
    inst = sh.js(f"act {pre['id']} approve --as zhang.wei")
    assert [t["role"] for t in inst["tasks"]] == [role]


def test_cli_c_override_rejected_at_the_amount(sh: Shell) -> None:
    inst = cli_start(sh, "C", "300000", contract="1000000")
    pre = inst["tasks"][0]["id"]
    inst = sh.js(f"act {pre} approve --as zhang.wei")
    task = inst["tasks"][0]
    assert task["role"] == "general_manager"
    sh.refused(f"act {task['id']} reject --as lin.feng", "a comment is required")
    done = sh.js(["act", task["id"], "reject", "--as", "lin.feng", "--comment", "风险过高"])
    assert (done["status"], done["outcome"]) == ("completed", "rejected")
    assert done["variables"].get("approved_credit") is None


def test_cli_within_limit_and_preapproval_rejection(sh: Shell) -> None:
    inst = cli_start(sh, "B", "1000000")
    assert (inst["status"], inst["outcome"], inst["tasks"]) == ("completed", "approved", [])
    assert inst["variables"]["credit_term_days"] == 45  # the table's term
    inst = cli_start(sh, "C", "10000", contract="100000")
    done = sh.js(
        ["act", inst["tasks"][0]["id"], "reject", "--as", "zhang.wei", "--comment", "不赊销"]
    )
    assert (done["state"], done["outcome"]) == ("rejected", "rejected")


def test_cli_the_requester_cannot_route_a_5000000_request(sh: Shell) -> None:
    """The issue's "done when": nothing the requester supplies makes 5,000,000 within the
    limit or lowers its approver; the approver follows the credit table's figures."""
    start = "start credit_override --as liu.yang --set customer=天山乳业"
    for figures in (
        "--set requested_credit=5000000 --set credit_limit=5000000",
        "--set requested_credit=5000000 --set grade=A",
        "--set requested_credit=5000000 --set grade=A --set credit_limit=5000000",
        "--set requested_credit=5000000 --set table_term_days=50",
        "--set requested_credit=500000 --set grade=C --set credit_limit=500000",
        "--set requested_credit=500000 --set contract_amount=100000000",
    ):
        sh.refused(f"{start} {figures}", "cannot be set by start")
    sh.refused(
        "start credit_override --as liu.yang --set customer=不在表中的客户 "
        "--set requested_credit=5000000",
        "not in the credit table (customer_credit) or has no credit line there",
    )
    assert sh.js("instances") == []
    inst = sh.js(f"{start} --set requested_credit=5000000")
    assert (inst["state"], [t["role"] for t in inst["tasks"]]) == (
        "approval",
        ["gm_office_meeting"],
    )
    assert (inst["variables"]["grade"], inst["variables"]["credit_limit"]) == ("A", "2000000")
    [started] = sh.js(f"audit --instance {inst['id']} --action start")
    assert started["data"]["registers_read"]["customer_credit"] == 3  # the imported book
    # the approver may not grant up to (or below) the table's limit through the override
    task = inst["tasks"][0]["id"]
    sh.refused(
        f"act {task} approve --as lin.feng --set approved_credit=2000000",
        "must be above the current limit",
    )


def test_cli_a_new_request_follows_the_new_table_a_running_one_what_it_read(
    db_url: str, tmp_path: Path
) -> None:
    sh = cli(db_url, "credit_override")
    sh.ok(["deploy", str(PROCESSES / "credit_table.yaml")])
    import_table(sh, tmp_path)
    first = cli_start(sh, "A", "2500000")
    assert [t["role"] for t in first["tasks"]] == ["sales_vp"]  # 25 % over 2,000,000
    # the credit table is revised: 1,000,000 for 天山乳业 (compiled, reviewed, approved)
    table = sh.js("start credit_table --as ma.hui --set customer=天山乳业")
    compile_ = table["tasks"][0]["id"]
    table = sh.js(
        f"act {compile_} submit --as ma.hui --set credit_limit=1000000 --set term_days=30 "
        "--set branch=sales_north"
    )
    table = sh.js(f"act {table['tasks'][0]['id']} approve --as zhang.wei")
    table = sh.js(f"act {table['tasks'][0]['id']} approve --as lin.feng")
    assert table["outcome"] == "approved"
    second = cli_start(sh, "A", "2500000", user="huang.tao")
    assert [t["role"] for t in second["tasks"]] == ["gm_office_meeting"]  # 150 % over
    assert (second["variables"]["credit_limit"], second["variables"]["table_term_days"]) == (
        "1000000",
        30,
    )
    # the running request keeps the figures it was filed with
    done = sh.js(f"act {first['tasks'][0]['id']} approve --as zhang.wei")
    assert (done["outcome"], done["variables"]["credit_limit"]) == ("approved", "2000000")


def test_cli_self_approval_is_refused(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "processes"
    (folder / "registers").mkdir(parents=True)
    (folder / "credit_override.yaml").write_text(source("credit_override"), encoding="utf-8")
    for reg in (PROCESSES / "registers").glob("*.yaml"):
        (folder / "registers" / reg.name).write_text(reg.read_text(encoding="utf-8"), "utf-8")
    org_text = (PROCESSES / "org.yaml").read_text(encoding="utf-8")
    org_text += "  sam.li: {name: 李森, roles: [salesperson, sales_vp]}\n"
    (folder / "org.yaml").write_text(org_text, encoding="utf-8")
    sh = Shell(db_url, folder)
    sh.ok("deploy")
    import_table(sh, tmp_path)
    inst = sh.js(
        "start credit_override --as sam.li --set customer=天山乳业 --set requested_credit=2500000"
    )
    task = inst["tasks"][0]
    assert task["role"] == "sales_vp"
    assert sh.js("tasks --as sam.li") == []
    sh.refused(f"act {task['id']} approve --as sam.li", "four-eyes rule: sam.li requested this")
    denied = sh.js(f"audit --instance {inst['id']} --action denied")
    assert [e["actor"] for e in denied] == ["sam.li"]
    done = sh.js(f"act {task['id']} approve --as zhang.wei")
    assert done["outcome"] == "approved"


def test_cli_a_resubmission_is_checked_against_the_credit_table_like_a_start(sh: Shell) -> None:
    """Sent back to the requester, a request may be resubmitted for another customer: the
    figures are read again (start.set) and a customer the table does not list is refused
    with start.when's reason, as at the start, and nothing changes."""
    inst = cli_start(sh, "A", "2500000")
    [task] = inst["tasks"]
    sh.ok(["rollback", task["id"], "--to", "start", "--as", "zhang.wei", "--comment", "改客户"])
    [back] = sh.js("tasks --as liu.yang")
    before = sh.js(f"show {inst['id']}")
    sh.refused(
        [
            "act",
            back["id"],
            "resubmit",
            "--as",
            "liu.yang",
            "--set",
            "customer=不在表中的客户",
            "--set",
            "requested_credit=5000000",
        ],
        "not in the credit table (customer_credit) or has no credit line there",
    )
    assert sh.js(f"show {inst['id']}") == before
    # resubmitted for a customer in the table, it routes by that customer's figures
    again = sh.js(f"act {back['id']} resubmit --as liu.yang --set customer=某乳品厂")
    assert (again["variables"]["grade"], again["variables"]["credit_limit"]) == ("B", "1000000")
    assert [t["role"] for t in again["tasks"]] == ["gm_office_meeting"]  # 2.5M is 150 % over
