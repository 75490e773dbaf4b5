"""Guards and computed values: Jinja2 expressions in a sandbox, with exact decimals.

Jinja parses ``0.02`` as a binary float; a late fee of ``amount * 0.0002`` would then be
inexact (and Decimal * float raises). We rewrite every float literal in the parsed tree
into ``"0.02" | decimal`` before compiling, so literals are as exact as variables.
A guard must return a real bool: ``None`` or a string is an error, never "truthy".

Every expression's work is bounded (engine/bounds.py): operators, filters, method calls,
``~``, ``range`` and literals refuse values over the limits before building them, at run
time and, for the parts that use no variable, already when the expression is compiled.
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal, DivisionByZero, InvalidOperation
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    Undefined,
    nodes,
    pass_eval_context,
)
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.filters import make_attrgetter, sync_do_join
from jinja2.nodes import EvalContext
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer

from engine import bounds
from engine.bounds import MAX_EXPONENT, MAX_INT_BITS, MAX_SIZE, MAX_WORK, TooBig
from engine.errors import ExpressionError, ExpressionTooBig
from engine.registers import REGISTER_FUNCTIONS

MAX_SOURCE = 2_000
__all__ = [
    "BUILTIN_NAMES",
    "MAX_EXPONENT",
    "MAX_INT_BITS",
    "MAX_SIZE",
    "MAX_SOURCE",
    "MAX_WORK",
    "Expression",
]


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


class _Env(ImmutableSandboxedEnvironment):
    """The sandbox, with every growing operation bounded.

    Immutable: a guard must not change the lists and dicts of the instance (and
    ``l.extend(l)`` repeated would double a list each time). Not ``optimized``: Jinja's
    optimizer folds constants while compiling, unbounded (``'a' * 10**9`` took 4 GB in
    ``validate``); ``Expression`` checks constant parts itself, within the bounds.
    """

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "/":
            # int / int would be a binary float: divide as exact decimals instead
            if isinstance(left, int) and not isinstance(left, bool):
                left = Decimal(left)
            if isinstance(right, int) and not isinstance(right, bool):
                right = Decimal(right)
            return left / right
        bounds.check_binop(operator, left, right)
        return bounds.check_int(self.binop_table[operator](left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            args = bounds.check_str_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        return bounds.produced(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt: str = value.__self__
        is_map = value.__name__ == "format_map"

        def bounded(*args: Any, **kwargs: Any) -> str:
            if is_map and len(args) == 1 and isinstance(args[0], Mapping):
                bounds.check_str_format(fmt, (), args[0])
            else:
                bounds.check_str_format(fmt, args, kwargs)
            return bounds.produced(wrapper(*args, **kwargs))

        return bounded


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Check a filter's arguments before it runs (if it can grow) and its result after."""
    check = bounds.FILTER_CHECKS.get(name)
    if check is None and name in bounds.TEXT_FILTERS:
        check = bounds.check_text_input
    skip = 1 if _PassArg.from_obj(func) is not None else 0

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if check is not None:
            check(*args[skip:], **kwargs)
        return bounds.produced(func(*args, **kwargs))

    return bounded


@pass_eval_context
def _join(eval_ctx: EvalContext, value: Any, d: str = "", attribute: Any = None) -> str:
    items = list(bounds.bounded_iter(value))
    if attribute is not None:
        items = list(map(make_attrgetter(eval_ctx.environment, attribute), items))
    bounds.check_text_parts(items, str(d))
    return sync_do_join(eval_ctx, items, d)


def _concat(parts: tuple[Any, ...]) -> str:
    """``a ~ b`` (Jinja joins the parts as text), after checking the length it would reach."""
    bounds.check_text_parts(parts)
    return "".join(str(p) for p in parts)


def _literal(value: Any) -> Any:
    """A list, tuple or dict written in the expression: ``[x, x, x]`` repeats x's size."""
    return bounds.produced(value)


def _range(*args: Any) -> range:
    rng = range(*args)
    if len(rng) > MAX_SIZE:
        raise TooBig(
            f"would build a range over the limit of {MAX_SIZE:,} numbers (about {len(rng):,}); "
            "keep values small (see the limits in docs/yaml-reference.md)"
        )
    bounds.charge(len(rng))
    return rng


ENV = _Env(undefined=StrictUndefined, autoescape=False, optimized=False)
ENV.filters["decimal"] = _to_decimal
ENV.filters["round"] = _round
ENV.filters["join"] = _join
ENV.filters = {name: _bounded_filter(name, f) for name, f in ENV.filters.items()}
ENV.filters["_concat"] = _concat
ENV.filters["_literal"] = _literal
del ENV.globals["lipsum"]  # lipsum(10**9) loops a billion times; nothing needs it
# A guard must give the same answer when a step is replayed or checked again: no chance.
del ENV.filters["random"]
ENV.globals.update(
    {
        "range": _range,
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


class _Bounded(NodeTransformer):
    """Route ``~`` and literals through bounded filters; refuse oversized integer literals."""

    def visit_Const(self, node: nodes.Const) -> nodes.Node:
        bounds.check_int(node.value)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        parts = [self.visit(n) for n in node.nodes]
        return _filter(nodes.Tuple(parts, "load", lineno=node.lineno), "_concat")

    def _literal(self, node: nodes.Expr) -> nodes.Node:
        return _filter(self.generic_visit(node), "_literal")

    visit_List = visit_Dict = _literal

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        return self._literal(node) if node.ctx == "load" else self.generic_visit(node)


def _filter(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


_CHEAP_FILTERS = frozenset({"decimal", "_literal"})


def _constant_parts(node: nodes.Node) -> list[nodes.Expr]:
    """The largest sub-expressions that read no variable and do some work."""
    inside = [node, *node.find_all(nodes.Node)]
    if isinstance(node, nodes.Expr) and all(
        n.name in ENV.globals for n in inside if isinstance(n, nodes.Name)
    ):
        work = any(
            isinstance(n, nodes.BinExpr | nodes.Call)
            or isinstance(n, nodes.Filter)
            and n.name not in _CHEAP_FILTERS
            for n in inside
        )
        return [node] if work else []
    return [part for child in node.iter_child_nodes() for part in _constant_parts(child)]


def _register_calls(expr: nodes.Expr) -> tuple[tuple[str, str | None], ...]:
    """``(function, register named)`` per use of a register function; the name is None
    when the first argument is not a string literal (or the function is not called), so
    that the process compiler can refuse a register chosen at run time."""
    calls: list[tuple[str, str | None]] = []
    called: set[int] = set()
    # the root too: find_all looks below it, and `register_keys('x')` alone is the root
    roots = [expr] if isinstance(expr, nodes.Call) else []
    for call in (*roots, *expr.find_all(nodes.Call)):
        fn = call.node
        if isinstance(fn, nodes.Name) and fn.name in REGISTER_FUNCTIONS:
            called.add(id(fn))
            first = call.args[0] if call.args else None
            literal = (
                first.value
                if isinstance(first, nodes.Const) and isinstance(first.value, str)
                else None
            )
            calls.append((fn.name, literal))
    if isinstance(expr, nodes.Name) and expr.name in REGISTER_FUNCTIONS and id(expr) not in called:
        calls.append((expr.name, None))
    for name in expr.find_all(nodes.Name):
        if name.name in REGISTER_FUNCTIONS and id(name) not in called:
            calls.append((name.name, None))
    return tuple(calls)


def _template(expr: nodes.Expr) -> Template:
    body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
    tree = nodes.Template(body, lineno=1)
    tree.set_environment(ENV)
    return ENV.from_string(tree)


def _check_constant(source: str, part: nodes.Expr) -> None:
    """Evaluate a part that uses no variable now, so that ``validate`` reports it over a limit."""
    template = _template(part)
    try:
        with bounds.budget():
            for _ in template.root_render_func(template.new_context({})):
                pass
    except TooBig as exc:
        raise ExpressionTooBig(source, str(exc)) from None
    except Exception:  # noqa: BLE001 - other errors depend on the run (or show up there)
        return


class Expression:
    """A compiled expression; ``names`` are the variables it reads (for validation).

    ``where`` (``file:line:col``) is set by the process compiler, for runtime errors.
    """

    __slots__ = ("source", "names", "where", "register_calls", "_template")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ExpressionError(str(source), "empty expression")
        if len(source) > MAX_SOURCE:
            raise ExpressionError(source[:40] + "...", f"longer than {MAX_SOURCE} characters")
        self.source = source
        self.where = ""
        try:
            parser = Parser(ENV, source, state="variable")
            expr = parser.parse_expression()
            if not parser.stream.eos:
                raise TemplateSyntaxError("unexpected text after the expression", 1)
            # the root too: a bare name (`set: {topic: item}`) is a Name node itself
            self.names: frozenset[str] = frozenset(
                n.name
                for n in (expr, *expr.find_all(nodes.Name))
                if isinstance(n, nodes.Name) and n.ctx == "load"
            )
            self.register_calls = _register_calls(expr)
            expr = _Bounded().visit(_exact_floats(expr))
            for part in _constant_parts(expr):
                _check_constant(source, part)
            self._template = _template(expr)
        except TemplateSyntaxError as exc:  # also an unknown filter or test
            raise ExpressionError(source, f"does not compile: {exc.message}") from None
        except TooBig as exc:
            raise ExpressionTooBig(source, str(exc)) from None
        except RecursionError:
            raise ExpressionError(source[:40], "nested too deeply") from None

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        ctx = self._template.new_context(dict(context))
        try:
            with bounds.budget():
                for _ in self._template.root_render_func(ctx):
                    pass
        except ExpressionError:
            raise
        except TooBig as exc:
            raise ExpressionTooBig(self.source, str(exc), self.where) from None
        except MemoryError:
            raise ExpressionTooBig(self.source, "ran out of memory", self.where) from None
        except UndefinedError as exc:
            raise ExpressionError(self.source, f"{exc.message}", self.where) from None
        except SecurityError as exc:
            reason = f"refused by the sandbox: {exc}"
            raise ExpressionError(self.source, reason, self.where) from None
        except (ZeroDivisionError, DivisionByZero):
            raise ExpressionError(self.source, "division by zero", self.where) from None
        except (ArithmeticError, InvalidOperation) as exc:
            raise ExpressionError(
                self.source, f"arithmetic error: {type(exc).__name__}", self.where
            ) from None
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            raise ExpressionError(self.source, str(exc) or type(exc).__name__, self.where) from None
        except RecursionError:
            raise ExpressionError(self.source, "recursion too deep", self.where) from None
        result = ctx.vars.get("result")
        if isinstance(result, Undefined):
            hint = result._undefined_hint or f"{result._undefined_name!r} is undefined"
            raise ExpressionError(self.source, hint, self.where)
        if isinstance(result, float):
            return Decimal(repr(result))
        return result

    def test(self, context: Mapping[str, Any]) -> bool:
        """Evaluate as a guard: only a real bool is accepted."""
        result = self.evaluate(context)
        if not isinstance(result, bool):
            raise ExpressionError(
                self.source,
                f"a guard must give true or false, got {type(result).__name__}",
                self.where,
            )
        return result

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"
