"""credit_override (第十条, 第十一条): every request reaches the approver the policy names,
exactly at the band edges, and every end state is reachable from the CLI."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.errors import ActionNotAllowed, DefinitionError, InvalidData, WorkflowError
from tests.cli.helpers import Shell

from . import Run, at, cli, compile_text, decisions_of, definition, source

D = Decimal
NOW = at("2026-10-12 10:00")
LIMITS = {"A": D(2_000_000), "B": D(1_000_000), "C": D(0)}


def request(grade: str, requested: str, user: str = "liu.yang", **extra: str) -> Run:
    return Run.start(
        "credit_override",
        user,
        NOW,
        customer="天山乳业",
        grade=grade,
        requested_credit=requested,
        **extra,
    )


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


def routed_role(grade: str, requested: str, contract: str = "1000000", **extra: str) -> Run:
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


@pytest.mark.parametrize(("grade", "requested"), [("A", "2000000"), ("B", "1000000"), ("C", "0")])
def test_within_the_limit_is_approved_at_once(grade: str, requested: str) -> None:
    run = request(grade, requested)
    assert (run.status, run.state, run.outcome) == ("completed", "within_limit", "approved")
    assert run.snap.tasks == () and run.pending() == []
    assert run.vars["credit_limit"] == LIMITS[grade]
    assert run.vars["credit_term_days"] == 50


def test_a_given_limit_replaces_the_grade_default() -> None:
    run = request("A", "650000", credit_limit="500000")
    assert run.vars["credit_limit"] == D(500_000) and run.vars["excess_pct"] == D(30)
    assert run.role == "sales_vp"
    assert request("B", "650001", credit_limit="500000").role == "gm_office_meeting"
    assert request("B", "900000", credit_limit="1500000").outcome == "approved"


def test_a_or_b_customer_with_a_zero_limit_goes_to_the_gm_office_meeting() -> None:
    run = request("B", "1", credit_limit="0")
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
    limit_fen=st.one_of(st.none(), st.integers(min_value=0, max_value=5_000_000_000)),
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
    extra = {} if limit_fen is None else {"credit_limit": str(D(limit_fen).scaleb(-2))}
    limit = LIMITS[grade] if limit_fen is None else D(limit_fen).scaleb(-2)
    expected = policy_role(grade, requested, limit, contract)
    run = routed_role(grade, str(requested), contract=str(contract), **extra)
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


def test_c_needs_the_contract_amount_before_routing() -> None:
    run = request("C", "100000")
    assert (run.state, run.role, run.vars["contract_share_pct"]) == (
        "c_preapproval",
        "sales_vp",
        None,
    )
    with pytest.raises(InvalidData, match="contract_amount: required by action 'approve'"):
        run.act("zhang.wei", "approve")
    run.act("zhang.wei", "approve", contract_amount="400000")
    assert (run.role, run.vars["contract_share_pct"]) == ("general_manager", D(25))


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
        ({"grade": "D"}, "grade: 'D' is not one of A, B, C"),
        ({"requested_credit": "-1"}, "requested_credit: must be at least 0"),
        ({"requested_credit": "1.001"}, "at most 2 decimal places"),
        ({"contract_amount": "0"}, "contract_amount: must be at least 0.01"),
    ],
)
def test_bad_input_is_refused(data: dict[str, str], match: str) -> None:
    base = {"customer": "x", "grade": "A", "requested_credit": "1"} | data
    with pytest.raises(InvalidData, match=match):
        Run.start("credit_override", "liu.yang", NOW, **base)


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


@pytest.fixture
def sh(db_url: str) -> Shell:
    return cli(db_url, "credit_override")


def cli_start(sh: Shell, grade: str, requested: str, *extra: str) -> dict:
    return sh.js(
        [
            "start",
            "credit_override",
            "--as",
            "liu.yang",
            "--set",
            "customer=天山乳业",
            "--set",
            f"grade={grade}",
            "--set",
            f"requested_credit={requested}",
            *extra,
        ],
        now="2026-10-12T10:00:00+08:00",
    )


def test_cli_a_override_approved_by_the_gm(sh: Shell) -> None:
    inst = cli_start(sh, "A", "2800000", "--set", "reason=旺季备货")
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
    inst = cli_start(sh, "C", credit, "--set", "contract_amount=1000000")
    [pre] = inst["tasks"]
    assert (inst["state"], pre["role"]) == ("c_preapproval", "sales_vp")
    inst = sh.js(f"act {pre['id']} approve --as zhang.wei")
    assert [t["role"] for t in inst["tasks"]] == [role]


def test_cli_c_override_rejected_at_the_amount(sh: Shell) -> None:
    inst = cli_start(sh, "C", "300000")
    pre = inst["tasks"][0]["id"]
    inst = sh.js(f"act {pre} approve --as zhang.wei --set contract_amount=1000000")
    task = inst["tasks"][0]
    assert task["role"] == "general_manager"
    sh.refused(f"act {task['id']} reject --as lin.feng", "a comment is required")
    done = sh.js(["act", task["id"], "reject", "--as", "lin.feng", "--comment", "风险过高"])
    assert (done["status"], done["outcome"]) == ("completed", "rejected")
    assert done["variables"].get("approved_credit") is None


def test_cli_within_limit_and_preapproval_rejection(sh: Shell) -> None:
    inst = cli_start(sh, "B", "1000000")
    assert (inst["status"], inst["outcome"], inst["tasks"]) == ("completed", "approved", [])
    inst = cli_start(sh, "C", "10000", "--set", "contract_amount=100000")
    done = sh.js(
        ["act", inst["tasks"][0]["id"], "reject", "--as", "zhang.wei", "--comment", "不赊销"]
    )
    assert (done["state"], done["outcome"]) == ("rejected", "rejected")
