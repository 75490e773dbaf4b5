from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ExpressionError
from engine.expressions import Expression


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
