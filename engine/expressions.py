"""Guards and computed values: Jinja2 expressions in a sandbox, with exact decimals.

Jinja parses ``0.02`` as a binary float; a late fee of ``amount * 0.0002`` would then be
inexact (and Decimal * float raises). We rewrite every float literal in the parsed tree
into ``"0.02" | decimal`` before compiling, so literals are as exact as variables.
A guard must return a real bool: ``None`` or a string is an error, never "truthy".
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal, DivisionByZero, InvalidOperation
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from engine.errors import ExpressionError

MAX_SOURCE = 2_000
MAX_EXPONENT = 100


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ExpressionError(str(value), "a boolean is not a number")
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ExpressionError(str(value), "not a number") from None


def _round(value: Any, places: int = 2) -> Decimal:
    """Round half up, the commercial rule for yuan and fen."""
    return _to_decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _days_between(start: Any, end: Any) -> int:
    def as_date(v: Any) -> _dt.date:
        if isinstance(v, _dt.datetime):
            return v.date()
        if isinstance(v, _dt.date):
            return v
        return _dt.date.fromisoformat(str(v))

    return (as_date(end) - as_date(start)).days


def _add_days(start: Any, days: Any) -> _dt.date:
    """Plain calendar arithmetic on a date (not working days)."""
    if isinstance(start, _dt.datetime):
        start = start.date()
    if not isinstance(start, _dt.date):
        start = _dt.date.fromisoformat(str(start))
    return start + _dt.timedelta(days=int(_to_decimal(days)))


class _Env(SandboxedEnvironment):
    intercepted_binops = frozenset({"**", "/"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "/":
            # int / int would be a binary float: divide as exact decimals instead
            if isinstance(left, int) and not isinstance(left, bool):
                left = Decimal(left)
            if isinstance(right, int) and not isinstance(right, bool):
                right = Decimal(right)
            return left / right
        if operator == "**":
            if abs(_to_decimal(right)) > MAX_EXPONENT:
                raise SecurityError(f"exponent above {MAX_EXPONENT} refused")
            return left**right
        return super().call_binop(context, operator, left, right)


ENV = _Env(undefined=StrictUndefined, autoescape=False)
ENV.filters["decimal"] = _to_decimal
ENV.filters["round"] = _round
ENV.globals.update(
    {
        "decimal": _to_decimal,
        "round_fen": _round,
        "days_between": _days_between,
        "add_days": _add_days,
        "min": min,
        "max": max,
        "abs": abs,
    }
)
# names an expression may use besides the process variables
BUILTIN_NAMES = frozenset(ENV.globals) | {"now", "today", "actor", "requester", "true", "false"}


def _exact_floats(node: nodes.Node) -> nodes.Node:
    for child in node.iter_child_nodes():
        _exact_floats(child)
    for field in node.fields:
        value = getattr(node, field, None)
        if isinstance(value, nodes.Const) and isinstance(value.value, float):
            setattr(node, field, _decimal_node(value))
        elif isinstance(value, list):
            setattr(
                node,
                field,
                [
                    _decimal_node(v)
                    if isinstance(v, nodes.Const) and isinstance(v.value, float)
                    else v
                    for v in value
                ],
            )
    return node


def _decimal_node(const: nodes.Const) -> nodes.Filter:
    return nodes.Filter(
        nodes.Const(repr(const.value), lineno=const.lineno),
        "decimal",
        [],
        [],
        None,
        None,
        lineno=const.lineno,
    )


class Expression:
    """A compiled expression; ``names`` are the variables it reads (for validation)."""

    __slots__ = ("source", "names", "_template")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ExpressionError(str(source), "empty expression")
        if len(source) > MAX_SOURCE:
            raise ExpressionError(source[:40] + "...", f"longer than {MAX_SOURCE} characters")
        self.source = source
        try:
            parser = Parser(ENV, source, state="variable")
            expr = parser.parse_expression()
            if not parser.stream.eos:
                raise TemplateSyntaxError("unexpected text after the expression", 1)
        except TemplateSyntaxError as exc:
            raise ExpressionError(source, f"does not compile: {exc.message}") from None
        except RecursionError:
            raise ExpressionError(source[:40], "nested too deeply") from None
        expr = _exact_floats(expr)
        self.names: frozenset[str] = frozenset(
            n.name for n in expr.find_all(nodes.Name) if n.ctx == "load"
        )
        body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
        tree = nodes.Template(body, lineno=1)
        tree.set_environment(ENV)
        self._template = ENV.from_string(tree)

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        ctx = self._template.new_context(dict(context))
        try:
            for _ in self._template.root_render_func(ctx):
                pass
        except ExpressionError:
            raise
        except UndefinedError as exc:
            raise ExpressionError(self.source, f"{exc.message}") from None
        except SecurityError as exc:
            raise ExpressionError(self.source, f"refused by the sandbox: {exc}") from None
        except (ZeroDivisionError, DivisionByZero):
            raise ExpressionError(self.source, "division by zero") from None
        except (ArithmeticError, InvalidOperation) as exc:
            raise ExpressionError(self.source, f"arithmetic error: {type(exc).__name__}") from None
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            raise ExpressionError(self.source, str(exc) or type(exc).__name__) from None
        except RecursionError:
            raise ExpressionError(self.source, "recursion too deep") from None
        result = ctx.vars.get("result")
        if isinstance(result, Undefined):
            hint = result._undefined_hint or f"{result._undefined_name!r} is undefined"
            raise ExpressionError(self.source, hint)
        if isinstance(result, float):
            return Decimal(repr(result))
        return result

    def test(self, context: Mapping[str, Any]) -> bool:
        """Evaluate as a guard: only a real bool is accepted."""
        result = self.evaluate(context)
        if not isinstance(result, bool):
            raise ExpressionError(
                self.source, f"a guard must give true or false, got {type(result).__name__}"
            )
        return result

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def compile_all(sources: Mapping[str, str]) -> dict[str, Expression]:
    return {key: Expression(src) for key, src in sources.items()}


Evaluator = Callable[[Mapping[str, Any]], Any]
