"""Decision-table cells and exact numbers: what one ``when`` value of a table means.

A cell is parsed on its own, before the table knows which input it belongs to (pydantic
validates each cell separately, which is what puts a syntax error at the cell's line:col),
so it keeps every reading it has; ``engine.tablecheck`` later insists on the one the
input's type needs.

Numbers are ``Decimal`` end to end, parsed from their text by our own grammar, so ``30``
and ``30.0000001`` fall on the side of a band the policy says they do.

This module is pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "ANY_CELL",
    "CELL_SYNTAX",
    "Cell",
    "CellField",
    "Interval",
    "NumberField",
    "parse_cell",
    "parse_number",
    "show_number",
]

# Digits with single underscores between them, as YAML and Python write big numbers
# (1_000_000). No exponents, no inf/nan: a policy band is written out in full.
_NUMBER = re.compile(r"[+-]?\d(?:_?\d)*(?:\.\d(?:_?\d)*)?")
_RANGE = re.compile(r"([(\[])\s*(?P<lo>[^,]*?)\s*,\s*(?P<hi>[^,]*?)\s*([)\]])")
_COMPARISON = re.compile(r"(?P<op><=|>=|==|!=|<|>)\s*(?P<operand>.*)")

CELL_SYNTAX = (
    "a value, a list of values, '-' for any, a range such as '(30, 50]', '[0, 30]', "
    "'(50, )' or '( , 100)', or a comparison such as '>= 8', '< 1000000', '== 5', '!= C'"
)


def parse_number(text: str) -> Decimal | None:
    """Exact Decimal for number text such as ``30``, ``-0.5`` or ``1_000_000``, else None.

    Our own grammar rather than ``Decimal(text)``, which would also take ``NaN``,
    ``Infinity`` and ``1e3``: none of those belong in a policy band.
    """
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    return Decimal(text.replace("_", ""))


def show_number(number: Decimal) -> str:
    """Plain notation for messages: ``1000000``, never ``1.0E+6``."""
    return format(number, "f")


@dataclass(frozen=True)
class Interval:
    """A convex set of numbers; ``None`` bounds are infinite (and then always open)."""

    lo: Decimal | None
    lo_closed: bool
    hi: Decimal | None
    hi_closed: bool

    def contains(self, x: Decimal) -> bool:
        if self.lo is not None and (x < self.lo or (x == self.lo and not self.lo_closed)):
            return False
        return not (self.hi is not None and (x > self.hi or (x == self.hi and not self.hi_closed)))

    def covers(self, other: Interval) -> bool:
        """Whether ``other`` lies entirely inside this interval (decided on endpoints only,
        so the gap check never needs arithmetic that could round)."""
        if self.lo is not None:
            if other.lo is None or other.lo < self.lo:
                return False
            if other.lo == self.lo and other.lo_closed and not self.lo_closed:
                return False
        if self.hi is not None:
            if other.hi is None or other.hi > self.hi:
                return False
            if other.hi == self.hi and other.hi_closed and not self.hi_closed:
                return False
        return True

    def bounds(self) -> list[Decimal]:
        return [b for b in (self.lo, self.hi) if b is not None]

    def describe(self, name: str) -> str | None:
        """How a gap message names this piece of ``name``'s line; None for the whole line."""
        lo, hi = self.lo, self.hi
        if lo is not None and lo == hi:
            return f"{name}={show_number(lo)}"
        if lo is None and hi is None:
            return None
        if lo is None:
            assert hi is not None
            return f"{name} {'<=' if self.hi_closed else '<'} {show_number(hi)}"
        if hi is None:
            return f"{name} {'>=' if self.lo_closed else '>'} {show_number(lo)}"
        left, right = "[" if self.lo_closed else "(", "]" if self.hi_closed else ")"
        return f"{name} in {left}{show_number(lo)}, {show_number(hi)}{right}"


_EVERYTHING = Interval(None, False, None, False)

LiteralValue = str | bool


@dataclass(frozen=True)
class Cell:
    """One parsed ``when`` cell.

    A cell is parsed before we know which input it belongs to (pydantic validates each
    cell on its own, which is what puts a syntax error at the cell's line:col), so it
    keeps both readings it has: as numbers (``numbers``) and as enum/boolean literals
    (``literals``, or everything but them when ``negated``). ``30`` has both; ``(30, 50]``
    only the first; ``B`` only the second. check_table then insists that the reading the
    input's type needs exists.
    """

    source: Any
    numbers: tuple[Interval, ...] | None = None
    literals: frozenset[LiteralValue] | None = None
    negated: bool = False

    @property
    def is_any(self) -> bool:
        return self.negated and not self.literals and self.numbers == (_EVERYTHING,)

    def matches(self, value: Decimal | str | bool) -> bool:
        """Whether an already-typed input value satisfies the cell."""
        if isinstance(value, Decimal):
            return self.numbers is not None and any(i.contains(value) for i in self.numbers)
        # literals hold only str and bool, so True never meets a stray 1 here
        return self.literals is not None and (value in self.literals) != self.negated


ANY_CELL = Cell("-", numbers=(_EVERYTHING,), literals=frozenset(), negated=True)


def _cell_error(reason: str) -> PydanticCustomError:
    # the reason goes in as context, so braces in a user's cell text are not a template
    return PydanticCustomError("decision_cell", "{reason}", {"reason": reason})


def _bound(text: str, whole: str) -> Decimal | None:
    if text == "":
        return None
    number = parse_number(text)
    if number is None:
        raise _cell_error(f"range {whole!r}: {text!r} is not a number")
    return number


def _parse_range(text: str) -> Cell:
    m = _RANGE.fullmatch(text)
    if m is None:
        raise _cell_error(
            f"{text!r} is not a range; write it like '(30, 50]', '[0, 30]', '(50, )' or '( , 100)'"
        )
    lo, hi = _bound(m["lo"], text), _bound(m["hi"], text)
    if lo is None and hi is None:
        raise _cell_error(f"range {text!r} has no bounds; write '-' for any value")
    lo_closed = m.group(1) == "[" and lo is not None
    hi_closed = m.group(4) == "]" and hi is not None
    if lo is not None and hi is not None:
        if lo > hi:
            raise _cell_error(
                f"range {text!r} is empty: "
                f"low {show_number(lo)} is greater than high {show_number(hi)}"
            )
        if lo == hi and not (lo_closed and hi_closed):
            raise _cell_error(
                f"range {text!r} is empty; write '[{show_number(lo)}, {show_number(hi)}]'"
            )
    return Cell(text, numbers=(Interval(lo, lo_closed, hi, hi_closed),))


def _parse_comparison(text: str) -> Cell:
    m = _COMPARISON.fullmatch(text)
    if m is None:
        raise _cell_error(f"{text!r}: unknown operator; use <, <=, >, >=, == or !=")
    op, operand = m["op"], m["operand"].strip()
    if not operand:
        raise _cell_error(f"{text!r}: nothing to compare with after {op!r}")
    number = parse_number(operand)
    if number is None:
        if op in ("==", "!="):
            return Cell(text, literals=frozenset({operand}), negated=op == "!=")
        raise _cell_error(f"{text!r}: {operand!r} is not a number")
    intervals = {
        "<": (Interval(None, False, number, False),),
        "<=": (Interval(None, False, number, True),),
        ">": (Interval(number, False, None, False),),
        ">=": (Interval(number, True, None, False),),
        "==": (Interval(number, True, number, True),),
        "!=": (Interval(None, False, number, False), Interval(number, False, None, False)),
    }[op]
    # '== 5' also names an enum value '5'; '< 5' names none
    literals = frozenset({operand}) if op in ("==", "!=") else None
    return Cell(text, numbers=intervals, literals=literals, negated=op == "!=")


def _parse_scalar(raw: Any) -> Cell:
    if isinstance(raw, bool):
        return Cell(raw, literals=frozenset({raw}))
    if isinstance(raw, int | Decimal):
        if isinstance(raw, Decimal) and not raw.is_finite():
            raise _cell_error(f"{raw} is not a finite number")
        number = Decimal(raw)
        text = str(raw)
        return Cell(
            raw, numbers=(Interval(number, True, number, True),), literals=frozenset({text})
        )
    if isinstance(raw, float):
        raise _cell_error(f"binary float {raw!r} is inexact; write the number as text")
    if not isinstance(raw, str):
        raise _cell_error(f"a cell must be {CELL_SYNTAX}; got {type(raw).__name__}")
    text = raw.strip()
    if text == "-":
        return ANY_CELL
    if not text:
        raise _cell_error("empty cell; write '-' for any value")
    if text[0] in "([":
        return _parse_range(text)
    if text[0] in "<>=!":
        return _parse_comparison(text)
    number = parse_number(text)
    if number is not None:
        point = (Interval(number, True, number, True),)
        return Cell(raw, numbers=point, literals=frozenset({text}))
    return Cell(raw, literals=frozenset({text}))


def parse_cell(raw: Any) -> Cell:
    """Parse one cell as written in YAML (pydantic calls this for every ``when`` value)."""
    if isinstance(raw, Cell):
        return raw
    if raw is None:
        raise _cell_error("empty cell; write '-' for any value")
    if not isinstance(raw, list):
        return _parse_scalar(raw)
    if not raw:
        raise _cell_error("an empty list matches nothing; list values or write '-'")
    parts = []
    for item in raw:
        if isinstance(item, list | dict) or item is None:
            raise _cell_error("a list cell holds plain values, ranges or comparisons only")
        part = _parse_scalar(item)
        if part.negated:
            raise _cell_error(f"{item!r} cannot be part of a list: '-' and '!=' stand alone")
        parts.append(part)
    numbers = (
        tuple(i for p in parts for i in p.numbers or ())
        if all(p.numbers is not None for p in parts)
        else None
    )
    literals = (
        frozenset().union(*(p.literals or () for p in parts))
        if all(p.literals is not None for p in parts)
        else None
    )
    return Cell(raw, numbers=numbers, literals=literals)


CellField = Annotated[
    Cell,
    PlainValidator(parse_cell),
    PlainSerializer(lambda cell: cell.source),
    WithJsonSchema(
        {
            "description": "Cell: " + CELL_SYNTAX,
            "anyOf": [
                {"type": "string"},
                {"type": "number"},
                {"type": "boolean"},
                {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
            ],
        }
    ),
]


def _number_value(raw: Any) -> Decimal:
    """Validator for ``min``/``max``: exact numbers only, never a float's approximation."""
    if isinstance(raw, bool | float):
        raise PydanticCustomError(
            "decimal", "must be a number written exactly, not {kind}", {"kind": type(raw).__name__}
        )
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, Decimal) and raw.is_finite():
        return raw
    if isinstance(raw, str) and (number := parse_number(raw)) is not None:
        return number
    raise PydanticCustomError("decimal", "must be a number, got {value!r}", {"value": raw})


NumberField = Annotated[
    Decimal,
    PlainValidator(_number_value),
    PlainSerializer(show_number),
    WithJsonSchema({"type": ["number", "string"]}),
]
