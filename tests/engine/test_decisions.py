"""Decision tables: the POLICIES section 3 bands evaluated exactly at their edges, and
broken tables reported with the file positions a process owner needs to fix them."""

from __future__ import annotations

import functools
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import PydanticCustomError

from engine.cells import parse_cell
from engine.decisions import DecisionTable, evaluate, load_decisions
from engine.errors import DefinitionError, ExpressionError
from engine.tablecheck import MAX_CHECKS, MAX_OVERLAPS_LISTED, check_table
from engine.yamlsafe import load_text

D = Decimal

POLICY_YAML = """\
decisions:
  credit_override:
    title: 超信用额度审批路由 (第十一条)
    hit: unique
    inputs:
      grade: {type: enum, values: [A, B, C]}
      # A and B: how far the request exceeds the credit limit, in %;
      # C: the credit as a share of the single contract, in %
      over_pct: {type: number, min: 0}
    outputs: [role]
    rules:
      - when: {grade: A, over_pct: "[0, 30]"}
        then: {role: sales_vp}
      - when: {grade: A, over_pct: "(30, 50]"}
        then: {role: general_manager}
      - when: {grade: A, over_pct: "(50, )"}
        then: {role: gm_office_meeting}
      - when: {grade: B, over_pct: "<= 20"}
        then: {role: sales_vp}
      - when: {grade: B, over_pct: "(20, 30]"}
        then: {role: general_manager}
      - when: {grade: B, over_pct: "> 30"}
        then: {role: gm_office_meeting}
      - when: {grade: C, over_pct: "<= 20"}
        then: {role: sales_vp}
      - when: {grade: C, over_pct: "(20, 50]"}
        then: {role: general_manager}
      - when: {grade: C, over_pct: "> 50"}
        then: {role: gm_office_meeting}
  sales_amount_score:
    title: 销售额评分 (yuan; the source has no band above 1000万, we give it 10)
    inputs:
      amount: {type: number, min: 0}
    outputs: [score]
    rules:
      - when: {amount: ">= 10_000_000"}
        then: {score: 10}
      - when: {amount: "[8_000_000, 10_000_000)"}
        then: {score: 8}
      - when: {amount: "[5_000_000, 8_000_000)"}
        then: {score: 6}
      - when: {amount: "[1_000_000, 5_000_000)"}
        then: {score: 4}
      - when: {amount: "< 1_000_000"}
        then: {score: 2}
  collection_score:
    title: 回款率评分 (%)
    inputs:
      rate_pct: {type: number, min: 0}
    outputs: [score]
    rules:
      - when: {rate_pct: ">= 100"}
        then: {score: 10}
      - when: {rate_pct: "[80, 100)"}
        then: {score: 8}
      - when: {rate_pct: "[50, 80)"}
        then: {score: 6}
      - when: {rate_pct: "[30, 50)"}
        then: {score: 4}
      - when: {rate_pct: "< 30"}
        then: {score: 2}
  receivables_score:
    title: 年末应收账款评分 (yuan)
    inputs:
      receivables: {type: number, min: 0}
    outputs: [score, weight]
    rules:
      - when: {receivables: "<= 10_000"}
        then: {score: 10, weight: 0.30}
      - when: {receivables: "(10_000, 200_000]"}
        then: {score: 8, weight: 0.30}
      - when: {receivables: "(200_000, 800_000]"}
        then: {score: 6, weight: 0.30}
      - when: {receivables: "(800_000, 2_000_000]"}
        then: {score: 4, weight: 0.30}
      - when: {receivables: "> 2_000_000"}
        then: {score: 2, weight: 0.30}
  strategic_score:
    title: 战略影响评分
    inputs:
      influence: {type: enum, values: [leader, key, important, ordinary, sporadic]}
    outputs: [score]
    rules:
      - {when: {influence: leader}, then: {score: 10}}
      - {when: {influence: key}, then: {score: 8}}
      - {when: {influence: important}, then: {score: 6}}
      - {when: {influence: ordinary}, then: {score: 4}}
      - {when: {influence: sporadic}, then: {score: 2}}
  customer_grade:
    title: 客户等级 (new customers are C in their first year)
    hit: first
    inputs:
      new_customer: {type: boolean}
      score: {type: number, min: 2, max: 10}
    outputs: [grade]
    rules:
      - when: {new_customer: true}
        then: {grade: C}
      - when: {score: ">= 8"}
        then: {grade: A}
      - when: {score: ">= 5"}
        then: {grade: B}
      - when: {score: "-"}
        then: {grade: C}
"""


def _load(text: str) -> dict[str, DecisionTable]:
    doc = load_text(text, "p.yaml")
    return load_decisions(doc, doc.data["decisions"], ("decisions",))


def _problems(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(DefinitionError) as caught:
        _load(text)
    return [(p.line, p.col, p.message) for p in caught.value.problems]


def _pos(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based line and column of the nth occurrence of ``needle``."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


@functools.cache
def _policy_tables() -> dict[str, DecisionTable]:
    return _load(POLICY_YAML)


@pytest.fixture
def tables() -> dict[str, DecisionTable]:
    return _policy_tables()


def _one(table: DecisionTable, **inputs: Any) -> Any:
    (value,) = evaluate(table, inputs).outputs.values()
    return value


# --------------------------------------------------------------------------- policies


@pytest.mark.parametrize(
    ("grade", "over_pct", "role"),
    [
        ("A", D("0"), "sales_vp"),
        ("A", D("30"), "sales_vp"),
        ("A", D("30.0000"), "sales_vp"),
        ("A", D("30.0000001"), "general_manager"),
        ("A", D("50"), "general_manager"),
        ("A", D("50.01"), "gm_office_meeting"),
        ("A", D("1000"), "gm_office_meeting"),
        ("B", D("20"), "sales_vp"),
        ("B", D("20.0000001"), "general_manager"),
        ("B", D("30"), "general_manager"),
        ("B", D("30.01"), "gm_office_meeting"),
        ("C", D("20"), "sales_vp"),
        ("C", D("20.5"), "general_manager"),
        ("C", D("50"), "general_manager"),
        ("C", D("50.01"), "gm_office_meeting"),
    ],
)
def test_credit_override_routes_at_band_edges(
    tables: dict[str, DecisionTable], grade: str, over_pct: Decimal, role: str
) -> None:
    result = evaluate(tables["credit_override"], {"grade": grade, "over_pct": over_pct})
    assert result.outputs == {"role": role}


def test_result_names_the_rule_and_the_inputs_as_used(tables: dict[str, DecisionTable]) -> None:
    result = evaluate(
        tables["credit_override"], {"grade": "A", "over_pct": "30.5", "unrelated": object()}
    )
    assert result.rule == 1
    assert result.inputs == {"grade": "A", "over_pct": D("30.5")}
    assert isinstance(result.inputs["over_pct"], Decimal)


@pytest.mark.parametrize("over_pct", [30, "30", "30.00", D("30")])
def test_numbers_arrive_as_int_text_or_decimal(
    tables: dict[str, DecisionTable], over_pct: object
) -> None:
    assert _one(tables["credit_override"], grade="A", over_pct=over_pct) == "sales_vp"


@pytest.mark.parametrize(
    ("amount", "score"),
    [
        (D("0"), 2),
        (D("999999.99"), 2),
        (1_000_000, 4),
        (D("4999999.99"), 4),
        (5_000_000, 6),
        (D("7999999.99"), 6),
        (8_000_000, 8),
        (D("9999999.99"), 8),
        (10_000_000, 10),
        (D("123456789"), 10),
    ],
)
def test_sales_amount_bands(tables: dict[str, DecisionTable], amount: object, score: int) -> None:
    assert _one(tables["sales_amount_score"], amount=amount) == score


@pytest.mark.parametrize(
    ("rate", "score"),
    [
        (D("0"), 2),
        (D("29.99"), 2),
        (30, 4),
        (D("49.999"), 4),
        (50, 6),
        (D("79.9"), 6),
        (80, 8),
        (D("99.99"), 8),
        (100, 10),
        (D("120"), 10),
    ],
)
def test_collection_rate_bands(tables: dict[str, DecisionTable], rate: object, score: int) -> None:
    assert _one(tables["collection_score"], rate_pct=rate) == score


@pytest.mark.parametrize(
    ("receivables", "score"),
    [
        (0, 10),
        (10_000, 10),
        (D("10000.01"), 8),
        (200_000, 8),
        (D("200000.01"), 6),
        (800_000, 6),
        (D("800000.01"), 4),
        (2_000_000, 4),
        (D("2000000.01"), 2),
    ],
)
def test_receivables_bands_are_inclusive_as_written(
    tables: dict[str, DecisionTable], receivables: object, score: int
) -> None:
    result = evaluate(tables["receivables_score"], {"receivables": receivables})
    assert result.outputs == {"score": score, "weight": D("0.30")}
    assert isinstance(result.outputs["weight"], Decimal)
    assert type(result.outputs["score"]) is int


def test_strategic_influence_is_an_enum_table(tables: dict[str, DecisionTable]) -> None:
    assert _one(tables["strategic_score"], influence="important") == 6
    with pytest.raises(ExpressionError, match=r"'influence' is 'huge', not one of leader"):
        evaluate(tables["strategic_score"], {"influence": "huge"})


@pytest.mark.parametrize(
    ("new_customer", "score", "grade"),
    [
        (True, D("9.5"), "C"),
        (False, D("8"), "A"),
        (False, D("7.99"), "B"),
        (False, D("5"), "B"),
        (False, D("4.99"), "C"),
        (False, D("2"), "C"),
    ],
)
def test_hit_first_takes_the_first_matching_rule(
    tables: dict[str, DecisionTable], new_customer: bool, score: Decimal, grade: str
) -> None:
    table = tables["customer_grade"]
    assert _one(table, new_customer=new_customer, score=score) == grade


def test_the_same_rules_under_unique_are_overlaps() -> None:
    start = POLICY_YAML.index("  customer_grade:")
    text = "decisions:\n" + POLICY_YAML[start:].replace("hit: first", "hit: unique")
    problems = _problems(text)
    overlaps = [p for p in problems if "overlap" in p[2]]
    assert overlaps, problems
    assert any(
        "rules[1] and rules[2] overlap for new_customer=false, score=8" in p[2] for p in overlaps
    )
    assert all("hit: first" in p[2] for p in overlaps)


# --------------------------------------------------------------------------- evaluate errors


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"grade": "A"}, r"input 'over_pct' is missing \(needs a number\)"),
        ({"over_pct": 5}, r"input 'grade' is missing"),
        (
            {"grade": "A", "over_pct": 30.0},
            r"'over_pct' is the binary float 30.0, which is inexact",
        ),
        ({"grade": "A", "over_pct": "thirty"}, r"'over_pct' must be a number, got 'thirty'"),
        ({"grade": "A", "over_pct": True}, r"'over_pct' must be a number, got True"),
        ({"grade": "A", "over_pct": D("NaN")}, r"'over_pct' must be a number"),
        ({"grade": "A", "over_pct": D("-0.01")}, r"'over_pct' is -0.01, below its minimum 0"),
        ({"grade": "D", "over_pct": 5}, r"'grade' is 'D', not one of A, B, C"),
    ],
)
def test_bad_inputs_say_which_input_is_wrong(
    tables: dict[str, DecisionTable], inputs: dict[str, object], message: str
) -> None:
    with pytest.raises(ExpressionError, match=message) as caught:
        evaluate(tables["credit_override"], inputs)
    assert caught.value.expression == "decision credit_override"


def test_no_match_names_the_inputs() -> None:
    table = DecisionTable.model_validate(
        {
            "inputs": {"x": {"type": "number"}},
            "outputs": ["y"],
            "rules": [{"when": {"x": "< 0"}, "then": {"y": 1}}],
        }
    )
    assert check_table(table) == [(("rules",), "no rule covers x >= 0; add a rule for it")]
    with pytest.raises(ExpressionError, match=r"no rule matches x=7"):
        evaluate(table, {"x": 7})


def test_unchecked_overlap_under_unique_is_refused_at_evaluation() -> None:
    table = DecisionTable.model_validate(
        {
            "inputs": {"x": {"type": "number"}},
            "outputs": ["y"],
            "rules": [{"when": {"x": "<= 5"}, "then": {"y": 1}}, {"then": {"y": 2}}],
        }
    )
    with pytest.raises(ExpressionError, match=r"rules\[0\] and rules\[1\] match x=5"):
        evaluate(table, {"x": 5})
    assert evaluate(table, {"x": 6}).rule == 1


# --------------------------------------------------------------------------- broken tables


BROKEN_HEAD = """\
decisions:
  route:
    hit: unique
    inputs:
      grade: {type: enum, values: [A, B, C]}
      over_pct: {type: number, min: 0}
    outputs: [role]
    rules:
"""


def test_overlap_is_reported_at_both_rules() -> None:
    text = BROKEN_HEAD + (
        "      - when: {grade: [A, B, C], over_pct: '<= 30'}\n"
        "        then: {role: sales_vp}\n"
        "      - when: {grade: [A, B, C], over_pct: '>= 30'}\n"
        "        then: {role: general_manager}\n"
    )
    problems = _problems(text)
    message = (
        "rules[0] and rules[1] overlap for grade=A, over_pct=30; under hit: unique exactly "
        "one rule may match: make them disjoint, or use hit: first"
    )
    first, second = _pos(text, "when", 0), _pos(text, "when", 1)
    assert problems == [(*first, message), (*second, message)]
    assert first[0] != second[0]


def test_gap_is_reported_with_an_example() -> None:
    text = BROKEN_HEAD + (
        "      - when: {grade: [A, B], over_pct: '[0, 30]'}\n"
        "        then: {role: sales_vp}\n"
        "      - when: {grade: A, over_pct: '> 30'}\n"
        "        then: {role: general_manager}\n"
        "      - when: {grade: B, over_pct: '> 50'}\n"
        "        then: {role: general_manager}\n"
    )
    problems = _problems(text)
    rules_at = _pos(text, "rules:")
    assert problems == [
        (*rules_at, "no rule covers grade=B, over_pct in (30, 50]; add a rule for it"),
        (*rules_at, "no rule covers grade=C; add a rule for it"),
    ]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ('"(30, 50"', r"'\(30, 50' is not a range"),
        ('"[50, 30]"', r"range '\[50, 30\]' is empty: low 50 is greater than high 30"),
        ('"(30, 30)"', r"range '\(30, 30\)' is empty"),
        ('"[a, 30]"', r"range '\[a, 30\]': 'a' is not a number"),
        ('">= x"', r"'>= x': 'x' is not a number"),
        ('"=> 5"', r"unknown operator"),
        ('"( , )"', r"has no bounds; write '-'"),
        ("[]", r"an empty list matches nothing"),
        ("[A, '-']", r"'-' and '!=' stand alone"),
        ("", r"empty cell; write '-'"),
    ],
)
def test_bad_cell_syntax_is_reported_at_the_cell(cell: str, message: str) -> None:
    text = BROKEN_HEAD + (
        "      - when: {grade: A}\n"
        "        then: {role: sales_vp}\n"
        f"      - when: {{grade: B, over_pct: {cell}}}\n"
        "        then: {role: general_manager}\n"
    )
    problems = _problems(text)
    assert len(problems) == 1, problems
    line, col, got = problems[0]
    assert (line, col) == _pos(text, "over_pct", 1)
    assert re.search(message, got), got


@pytest.mark.parametrize(
    ("rule", "needle", "message"),
    [
        ("{when: {grade: A, over: 3}, then: {role: x}}", "over:", "'over' is not a declared input"),
        ("{when: {grade: D}, then: {role: x}}", "grade: D", "'D' is not a value of grade"),
        ("{when: {grade: '!= D'}, then: {role: x}}", "grade: '!=", "'D' is not a value of grade"),
        ("{when: {grade: '> 3'}, then: {role: x}}", "grade: '>", "grade is an enum input"),
        ("{when: {over_pct: A}, then: {role: x}}", "over_pct: A", "over_pct is a number input"),
        ("{when: {grade: A}, then: {role: x, who: y}}", "who:", "'who' is not a declared output"),
        ("{when: {grade: A}, then: {}}", "then:", "missing output 'role'"),
    ],
)
def test_table_level_problems_are_positioned(rule: str, needle: str, message: str) -> None:
    text = BROKEN_HEAD + f"      - {rule}\n      - {{when: {{grade: [B, C]}}, then: {{role: x}}}}\n"
    problems = _problems(text)
    assert any(
        (line, col) == _pos(text, needle) and message in msg for line, col, msg in problems
    ), problems


def test_every_problem_of_every_table_at_once() -> None:
    text = BROKEN_HEAD + (
        "      - {when: {grade: A, over_pct: '(1, 2'}, then: {role: x}}\n"
        "  other:\n"
        "    inputs: {n: {type: number, min: 5, max: 1}}\n"
        "    outputs: [y]\n"
        "    rules: [{then: {y: 1}}]\n"
        "    colour: blue\n"
    )
    messages = [p[2] for p in _problems(text)]
    assert any("is not a range" in m for m in messages)
    assert "min 5 is greater than max 1" in messages
    assert "unknown key 'colour'" in messages


def test_a_rule_that_can_never_decide_under_first() -> None:
    table = DecisionTable.model_validate(
        {
            "hit": "first",
            "inputs": {"x": {"type": "number", "min": 0}},
            "outputs": ["y"],
            "rules": [
                {"when": {"x": ">= 0"}, "then": {"y": 1}},
                {"when": {"x": "> 10"}, "then": {"y": 2}},
                {"when": {"x": "< 0"}, "then": {"y": 3}},
            ],
        }
    )
    assert check_table(table) == [
        (
            ("rules", 1),
            "rules[1] can never decide: earlier rules already match every case it covers",
        ),
        (
            ("rules", 2),
            "rules[2] can never decide: its cells match nothing inside the inputs' domains",
        ),
    ]


def test_the_grid_is_capped() -> None:
    points = [{"when": {k: str(i) for k in "abc"}, "then": {"y": i}} for i in range(60)]
    table = DecisionTable.model_validate(
        {
            "hit": "first",
            "inputs": {k: {"type": "number"} for k in "abc"},
            "outputs": ["y"],
            "rules": [*points, {"then": {"y": -1}}],
        }
    )
    ((path, message),) = check_table(table)
    assert path == ("rules",)
    assert f"too large to check ({121**3} input combinations, 61 rules" in message


def test_the_work_per_rule_is_capped_too() -> None:
    rules = [{"when": {"a": f"== {i}"}, "then": {"y": i}} for i in range(1500)]
    table = DecisionTable.model_validate(
        {
            "hit": "first",
            "inputs": {"a": {"type": "number"}},
            "outputs": ["y"],
            "rules": [*rules, {"then": {"y": -1}}],
        }
    )
    assert MAX_CHECKS < 3001 * 1501
    ((_, message),) = check_table(table)
    assert "(3001 input combinations, 1501 rules" in message


def test_a_big_clash_lists_a_bounded_number_of_pairs() -> None:
    table = DecisionTable.model_validate(
        {
            "inputs": {"a": {"type": "number"}},
            "outputs": ["y"],
            "rules": [{"then": {"y": i}} for i in range(500)],
        }
    )
    problems = check_table(table)
    assert len(problems) == 1 + 2 * MAX_OVERLAPS_LISTED
    listed = f"only the first {MAX_OVERLAPS_LISTED} overlapping pairs are listed"
    assert (("rules",), listed) in problems


def test_decision_names_must_be_identifiers() -> None:
    text = "decisions:\n  credit route:\n    inputs: {}\n"
    with pytest.raises(DefinitionError, match=r"p.yaml:2:3: decision name 'credit route'"):
        _load(text)


# --------------------------------------------------------------------------- cells


@pytest.mark.parametrize(
    ("raw", "inside", "outside"),
    [
        ("[0, 30]", ["0", "30", "15.5"], ["-0.0001", "30.0000001"]),
        ("(30, 50]", ["30.0000001", "50"], ["30", "50.0001"]),
        ("(50, )", ["50.01", "1E+9"], ["50"]),
        ("( , 100)", ["-1E+9", "99.99"], ["100"]),
        ("[5, )", ["5"], ["4.99"]),
        (">= 8", ["8", "9"], ["7.999"]),
        ("< 1_000_000", ["999999.99"], ["1000000"]),
        ("> 30", ["30.01"], ["30"]),
        ("<= 30", ["30"], ["30.01"]),
        ("== 5", ["5", "5.000"], ["5.01"]),
        ("!= 5", ["4", "6"], ["5"]),
        ("1_000_000", ["1000000"], ["999999"]),
        (["< 0", "[10, 20]", 30], ["-1", "10", "20", "30"], ["0", "25", "31"]),
        (30, ["30"], ["30.1"]),
        (D("30.50"), ["30.5"], ["30.51"]),
        ("-", ["-5", "0", "1E+30"], []),
    ],
)
def test_number_cells(raw: object, inside: list[str], outside: list[str]) -> None:
    cell = parse_cell(raw)
    assert all(cell.matches(D(v)) for v in inside)
    assert not any(cell.matches(D(v)) for v in outside)


@pytest.mark.parametrize(
    ("raw", "inside", "outside"),
    [
        ("A", ["A"], ["B", "a"]),
        (["A", "B"], ["A", "B"], ["C"]),
        ("!= C", ["A", "B"], ["C"]),
        ("== C", ["C"], ["A"]),
        ("-", ["A", "C"], []),
    ],
)
def test_enum_cells(raw: object, inside: list[str], outside: list[str]) -> None:
    cell = parse_cell(raw)
    assert all(cell.matches(v) for v in inside)
    assert not any(cell.matches(v) for v in outside)


def test_bool_cells_do_not_confuse_true_with_one() -> None:
    assert parse_cell(True).matches(True)
    assert not parse_cell(True).matches(False)
    assert not parse_cell("1").matches(True)
    assert not parse_cell(1).matches(True)
    assert parse_cell(1).matches(D(1))


@pytest.mark.parametrize("raw", ["1e3", "NaN", "Infinity", "30%", "1,000"])
def test_number_like_words_are_only_literals(raw: str) -> None:
    # on a number input check_table then reports them; they never become numbers
    assert parse_cell(raw).numbers is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("(1, inf)", "'inf' is not a number"),
        ("> 1e3", "'1e3' is not a number"),
        ("=5", "unknown operator"),
        (None, "empty cell"),
        (1.5, "binary float 1.5 is inexact"),
        ({"a": 1}, "got dict"),
    ],
)
def test_cell_syntax_errors(raw: object, message: str) -> None:
    with pytest.raises(PydanticCustomError, match=re.escape(message)):
        parse_cell(raw)


def test_json_schema_for_editors() -> None:
    schema = DecisionTable.model_json_schema()
    assert "Cell:" in str(schema)


# --------------------------------------------------------------------------- properties


def _reference_role(grade: str, pct: Decimal) -> str:
    low, high = {"A": (30, 50), "B": (20, 30), "C": (20, 50)}[grade]
    if pct <= low:
        return "sales_vp"
    elif pct <= high:
        return "general_manager"
    else:
        return "gm_office_meeting"


EDGES = [D(v) for v in ("0", "20", "30", "50")]
near_edges = st.builds(
    lambda edge, delta: max(D(0), edge + delta),
    st.sampled_from(EDGES),
    st.sampled_from([D(0), D("1E-12"), D("-1E-12"), D("0.01"), D("-0.01")]),
)
percentages = st.one_of(near_edges, st.decimals(min_value=0, allow_nan=False, allow_infinity=False))


@settings(max_examples=300)
@given(grade=st.sampled_from(["A", "B", "C"]), pct=percentages)
def test_credit_route_matches_an_if_elif_reference(grade: str, pct: Decimal) -> None:
    table = _policy_tables()["credit_override"]
    assert _one(table, grade=grade, over_pct=pct) == _reference_role(grade, pct)


BOUNDS = ["0", "1", "2.5", "10"]
cell_texts = st.one_of(
    st.just("-"),
    st.builds(
        lambda op, b: f"{op} {b}",
        st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
        st.sampled_from(BOUNDS),
    ),
    st.builds(
        lambda lo, hi, left, right: f"{left}{lo}, {hi}{right}",
        st.sampled_from(["0", "1"]),
        st.sampled_from(["2.5", "10"]),
        st.sampled_from("(["),
        st.sampled_from(")]"),
    ),
)
probe_values = st.sampled_from(
    [D(v) for v in ("-1", "0", "0.5", "1", "2", "2.5", "3", "10", "11", "1E-20", "9.99999")]
)


@settings(max_examples=200)
@given(
    hit=st.sampled_from(["unique", "first"]),
    cells=st.lists(st.tuples(cell_texts, st.sampled_from(["A", "B", "-"])), min_size=1, max_size=5),
    x=probe_values,
    k=st.sampled_from(["A", "B"]),
)
def test_a_clean_check_means_evaluation_always_decides(
    hit: str, cells: list[tuple[str, str]], x: Decimal, k: str
) -> None:
    table = DecisionTable.model_validate(
        {
            "hit": hit,
            "inputs": {"x": {"type": "number"}, "k": {"type": "enum", "values": ["A", "B"]}},
            "outputs": ["r"],
            "rules": [
                {"when": {"x": c, "k": e}, "then": {"r": i}} for i, (c, e) in enumerate(cells)
            ],
        }
    )
    problems = check_table(table)
    matching = [i for i, rule in enumerate(table.rules) if rule.matches({"x": x, "k": k})]
    if not matching:
        assert any("no rule covers" in m for _, m in problems)
    elif len(matching) > 1 and hit == "unique":
        assert any("overlap" in m for _, m in problems)
    gaps_or_overlaps = [m for _, m in problems if "no rule covers" in m or "overlap" in m]
    if not gaps_or_overlaps:
        assert evaluate(table, {"x": x, "k": k}).rule == matching[0]
