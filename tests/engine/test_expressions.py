import time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ExpressionError, ExpressionTooBig
from engine.expressions import Expression
from tests.memcap import memory_cap


def test_guard_is_exact_at_the_boundary() -> None:
    guard = Expression("over_pct <= 30")
    assert guard.test({"over_pct": Decimal("30")}) is True
    assert guard.test({"over_pct": Decimal("30.000000001")}) is False


def test_float_literals_become_decimals() -> None:
    fee = Expression("amount * 0.0002 * days").evaluate({"amount": Decimal("100000.01"), "days": 3})
    assert fee == Decimal("60.000006")
    assert isinstance(Expression("0.1 + 0.2").evaluate({}), Decimal)
    assert Expression("0.1 + 0.2 == 0.3").test({}) is True


@given(st.decimals(min_value=0, max_value=10**9, places=4))
def test_percent_over_limit_matches_python_decimal(requested: Decimal) -> None:
    limit = Decimal("2000000")
    got = Expression("(requested - limit) / limit * 100").evaluate(
        {"requested": requested, "limit": limit}
    )
    assert got == (requested - limit) / limit * 100


@pytest.mark.parametrize(
    ("source", "ctx", "message"),
    [
        ("x", {}, "'x' is undefined"),
        ("x", {"x": None}, "must give true or false"),
        ("'yes'", {}, "must give true or false"),
        ("1 / 0 > 1", {}, "division by zero"),
        ("2 ** 1000 > 1", {}, "exponent"),
        ("''.__class__.__mro__", {}, "unsafe"),
        ("a +", {}, "does not compile"),
        ("a b", {}, "does not compile"),
        ("x|no_such_filter", {}, "does not compile: No filter named"),
    ],
)
def test_bad_guards_are_errors_never_true(source: str, ctx: dict, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        Expression(source).test(ctx)


def test_names_are_collected_for_validation() -> None:
    assert Expression("a > b and c").names == {"a", "b", "c"}


def test_integer_division_is_exact_decimal() -> None:
    third = Expression("1 / 3").evaluate({})
    assert isinstance(third, Decimal)
    assert third == Decimal(1) / Decimal(3)
    assert Expression("7 / 2 == 3.5").test({}) is True


# --------------------------------------------------------------------------- bounds


def test_constant_repetition_is_refused_while_compiling() -> None:
    # the 450-byte file of the issue: validate took 13.7 s and 3.97 GB (Jinja folded it)
    started = time.perf_counter()
    with memory_cap(), pytest.raises(ExpressionTooBig, match="over the limit of 100,000"):
        Expression("'a'*1000000000")
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    ("source", "ctx", "message"),
    [
        # 1.0 GB of text
        ("'a'*10**9", {}, "text over the limit of 100,000 characters"),
        ("note * times", {"note": "a", "times": 10**9}, "text over the limit"),
        # 851 MB, and the action went through
        ("([0]*10**8)|length > 0", {}, "list over the limit of 100,000"),
        ("(zero*times)|length > 0", {"zero": [0], "times": 10**8}, "list over the limit"),
        # 7.7 s of CPU in one multiplication
        ("(((9**100)**100)**100)**10 > 0", {}, "number over the limit of 4,096 bits"),
        ("(((n**100)**100)**100)**10 > 0", {"n": 9}, "number over the limit of 4,096 bits"),
        # a MemoryError traceback
        ("([0]*10**9)|length > 0", {}, "list over the limit of 100,000"),
        ("(zero*times)|length > 0", {"zero": [0], "times": 10**9}, "list over the limit"),
    ],
)
def test_payloads_of_the_issue_are_refused_before_building(
    source: str, ctx: dict, message: str
) -> None:
    started = time.perf_counter()
    with memory_cap(), pytest.raises(ExpressionTooBig, match=message):
        Expression(source).test(ctx)
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    ("source", "ctx"),
    [
        ("x|center(n)", {}),
        ("x.center(n)", {}),
        ("x.ljust(n)", {}),
        ("x|indent(n)", {}),
        ("x|wordwrap(1, wrapstring=w)", {}),
        ("x|replace('', w)", {}),
        ("x.replace('a', w)", {"x": "aaa"}),
        ("x.expandtabs(n)", {"x": "\t"}),
        ("(x ~ w ~ w ~ w)|length", {}),
        ("[w, w, w]|join", {}),
        ("','.join([w, w, w])", {}),
        ("([w, w, w]|string)|length", {}),
        ("('%' ~ n ~ 's') % x", {}),
        ("'%(a)s%(a)s%(a)s' % {'a': w}", {}),
        ("('{:' ~ n ~ '}').format(x)", {}),
        ("'{0}{0}{0}'.format(w)", {}),
        ("[1]|batch(n, 0)|list", {}),
        ("[1]|slice(n)|list", {}),
        ("range(n)|list", {}),
        ("(w ~ '') + w + w", {}),
        ("([w] * 2) + [w]", {}),
        ("[[]] * n", {}),
        ("range(100000)|map('center', 99999)|list|length", {}),
        ("(2 ** 100) ** 100 > 0", {}),
        ("big * big * big > 0", {"big": 2**2000}),
        ("d|int > 0", {"d": Decimal("1e999999")}),
        ("'{:f}'.format(d)", {"d": Decimal("1e-999999")}),
    ],
)
def test_growing_operations_are_bounded(source: str, ctx: dict) -> None:
    base = {"x": "a\nb", "n": 10**9, "w": "w" * 40_000}
    started = time.perf_counter()
    with memory_cap(), pytest.raises(ExpressionTooBig, match="over the limit|more than"):
        Expression(source).evaluate(base | ctx)
    assert time.perf_counter() - started < 1


def test_values_under_the_limits_still_work() -> None:
    ctx = {"w": "w" * 40_000, "items": ["a", "b"]}
    assert Expression("(w ~ w)|length").evaluate(ctx) == 80_000
    assert Expression("'x' * 100000 == 'x' * 100000").test({}) is True
    assert Expression("range(100000)|list|length").evaluate({}) == 100_000
    assert Expression("items|join(', ') ~ '!'").evaluate(ctx) == "a, b!"
    assert Expression("'%s-%03d' % ('a', 7)").evaluate({}) == "a-007"
    assert Expression("2 ** 100 * 2 ** 100 == 4 ** 100").test({}) is True
    assert Expression("'{:>5}'.format('ab')").evaluate({}) == "   ab"
    assert Expression("'a-b'|replace('-', '--')").evaluate({}) == "a--b"


def test_a_guard_cannot_change_a_list_it_reads() -> None:
    items = [1]
    with pytest.raises(ExpressionError, match="unsafe"):
        Expression("items.extend(items) or true").test({"items": items})
    assert items == [1]


def test_runtime_refusal_names_where_the_expression_is() -> None:
    expr = Expression("note * times")
    expr.where = "p.yaml:12:15"
    with pytest.raises(ExpressionTooBig) as info:
        expr.evaluate({"note": "a", "times": 10**9})
    assert str(info.value).startswith("p.yaml:12:15: expression 'note * times': would build")


@pytest.mark.parametrize(
    ("source", "values", "reason"),
    [
        ("note", {"note": "x"}, "a guard must give true or false, got str"),
        ("1 / n > 0", {"n": 0}, "division by zero"),
        ("missing > 0", {}, "is undefined"),
        ("n in 5", {"n": 1}, "not iterable"),
    ],
)
def test_every_runtime_refusal_names_where_the_expression_is(
    source: str, values: dict[str, object], reason: str
) -> None:
    """Not only the size limits: whatever stops a guard at run time points at its line."""
    expr = Expression(source)
    expr.where = "p.yaml:12:15"
    with pytest.raises(ExpressionError, match=reason) as info:
        expr.test(values)
    assert str(info.value).startswith(f"p.yaml:12:15: expression {source!r}: ")


def test_chance_is_not_available_to_a_guard() -> None:
    """A replayed or re-checked step must decide the same way, so `random` is not a filter."""
    with pytest.raises(ExpressionError, match="random"):
        Expression("[1, 2]|random == 1")
