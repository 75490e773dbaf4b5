"""Decision tables: the bands and routes of a policy written as data, checked before use.

Policies such as the credit-override routes (第十一条) or the customer grading scores are
tables of ranges. Written as ``if`` chains they silently grow holes and overlaps at their
boundaries; written as a table they can be checked: every combination of inputs must be
covered by a rule (a gap would stop an instance at run time), and under ``hit: unique``
by exactly one (an overlap means the policy text was transcribed ambiguously).

Numbers are ``Decimal`` end to end, parsed from their text, so ``30`` and ``30.0000001``
fall on the side of a band the policy says they do.

This module is pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from math import prod
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.errors import DefinitionError, ExpressionError, Problem
from engine.validation import Frozen, pydantic_problems
from engine.yamlsafe import Document, PathKey

__all__ = [
    "MAX_CHECKS",
    "MAX_GRID",
    "Cell",
    "DecisionResult",
    "DecisionTable",
    "InputSpec",
    "Interval",
    "Rule",
    "check_table",
    "evaluate",
    "load_decisions",
    "parse_cell",
    "parse_number",
]

MAX_GRID = 100_000
"""Most input combinations check_table will enumerate; beyond it the table is refused."""

MAX_CHECKS = 2_000_000
"""Most rule-against-piece tests check_table will make, so a hostile file stays cheap."""

MAX_GAPS_LISTED = 10
"""Gaps listed one by one; more would bury the first, which usually explains the rest."""

MAX_OVERLAPS_LISTED = 20
"""Overlapping rule pairs collected before the check stops looking for more."""

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


def _show(number: Decimal) -> str:
    """Plain notation for messages: ``1000000``, never ``1.0E+6``."""
    return format(number, "f")


# --------------------------------------------------------------------------- cells


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
            return f"{name}={_show(lo)}"
        if lo is None and hi is None:
            return None
        if lo is None:
            assert hi is not None
            return f"{name} {'<=' if self.hi_closed else '<'} {_show(hi)}"
        if hi is None:
            return f"{name} {'>=' if self.lo_closed else '>'} {_show(lo)}"
        left, right = "[" if self.lo_closed else "(", "]" if self.hi_closed else ")"
        return f"{name} in {left}{_show(lo)}, {_show(hi)}{right}"


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
                f"range {text!r} is empty: low {_show(lo)} is greater than high {_show(hi)}"
            )
        if lo == hi and not (lo_closed and hi_closed):
            raise _cell_error(f"range {text!r} is empty; write '[{_show(lo)}, {_show(hi)}]'")
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
    PlainSerializer(_show),
    WithJsonSchema({"type": ["number", "string"]}),
]

OutputValue = str | bool | int | Decimal | None


# --------------------------------------------------------------------------- models


class InputSpec(Frozen):
    """An input's type; ``min``/``max`` (inclusive) bound the domain the gap check covers,
    so ``min: 0`` spares a process owner rules for negative percentages."""

    type: Literal["number", "enum", "boolean"]
    values: list[str] | None = None
    min: NumberField | None = None
    max: NumberField | None = None

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        if self.type == "enum":
            if not self.values:
                raise PydanticCustomError("input", "an enum input needs a non-empty 'values' list")
            if len(set(self.values)) != len(self.values):
                raise PydanticCustomError("input", "enum 'values' repeat a value")
        elif self.values is not None:
            raise PydanticCustomError(
                "input",
                "'values' is only for enum inputs (this one is {kind})",
                {"kind": self.type},
            )
        if self.type != "number" and (self.min is not None or self.max is not None):
            raise PydanticCustomError("input", "'min'/'max' are only for number inputs")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise PydanticCustomError(
                "input",
                "min {lo} is greater than max {hi}",
                {"lo": _show(self.min), "hi": _show(self.max)},
            )
        return self

    def domain(self) -> Interval:
        return Interval(self.min, self.min is not None, self.max, self.max is not None)


class Rule(Frozen):
    """One row: cells per input (missing = any) and the outputs it gives."""

    when: dict[str, CellField] = Field(default_factory=dict)
    then: dict[str, OutputValue]

    def matches(self, values: Mapping[str, Decimal | str | bool]) -> bool:
        # a cell for an undeclared input never matches: check_table reports it
        return all(k in values and cell.matches(values[k]) for k, cell in self.when.items())


class DecisionTable(Frozen):
    """One decision table as written under ``decisions: {<name>: ...}``.

    Validation parses every cell; :func:`check_table` then checks the table as a whole.
    """

    title: str = ""
    hit: Literal["unique", "first"] = "unique"
    inputs: dict[str, InputSpec] = Field(min_length=1)
    outputs: list[str] = Field(min_length=1)
    rules: list[Rule] = Field(min_length=1)

    _name: str = PrivateAttr(default="")

    @field_validator("outputs")
    @classmethod
    def _distinct_outputs(cls, outputs: list[str]) -> list[str]:
        if len(set(outputs)) != len(outputs):
            raise PydanticCustomError("outputs", "output names repeat")
        return outputs

    @model_validator(mode="after")
    def _take_name(self, info: ValidationInfo) -> DecisionTable:
        # the name is the key the table sits under; it only labels error messages
        if isinstance(info.context, Mapping):
            self._name = str(info.context.get("decision_name", ""))
        return self

    @property
    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return f"decision {self._name or self.title or 'table'}"


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class DecisionResult:
    """What a table decided, with the inputs as it saw them (for the audit log)."""

    rule: int
    outputs: dict[str, Any]
    inputs: dict[str, Any]


def _coerce(label: str, name: str, spec: InputSpec, inputs: Mapping[str, Any]) -> Any:
    if name not in inputs:
        raise ExpressionError(label, f"input {name!r} is missing (needs a {spec.type})")
    value = inputs[name]
    if spec.type == "boolean":
        if isinstance(value, bool):
            return value
        raise ExpressionError(label, f"input {name!r} must be true or false, got {value!r}")
    if spec.type == "enum":
        if isinstance(value, str) and value in (spec.values or ()):
            return value
        allowed = ", ".join(spec.values or ())
        raise ExpressionError(label, f"input {name!r} is {value!r}, not one of {allowed}")
    number: Decimal | None = None
    if isinstance(value, float):
        raise ExpressionError(
            label,
            f"input {name!r} is the binary float {value!r}, which is inexact; "
            "pass a Decimal, an int or the number as text",
        )
    if isinstance(value, Decimal) and value.is_finite():
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, str):
        number = parse_number(value)
    if number is None:
        raise ExpressionError(label, f"input {name!r} must be a number, got {value!r}")
    if spec.min is not None and number < spec.min:
        raise ExpressionError(
            label, f"input {name!r} is {_show(number)}, below its minimum {_show(spec.min)}"
        )
    if spec.max is not None and number > spec.max:
        raise ExpressionError(
            label, f"input {name!r} is {_show(number)}, above its maximum {_show(spec.max)}"
        )
    return number


def _describe_values(values: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k}={_show(v) if isinstance(v, Decimal) else repr(v)}" for k, v in values.items()
    )


def evaluate(table: DecisionTable, inputs: Mapping[str, Any]) -> DecisionResult:
    """Apply the table to ``inputs`` (extra keys are ignored).

    Numbers may come as Decimal, int or number text; floats are refused because a band
    edge such as 30% must compare exactly.
    """
    label = table.label()
    used = {name: _coerce(label, name, spec, inputs) for name, spec in table.inputs.items()}
    matched: list[int] = []
    for index, rule in enumerate(table.rules):
        if rule.matches(used):
            matched.append(index)
            if table.hit == "first":
                break
    if not matched:
        raise ExpressionError(label, f"no rule matches {_describe_values(used)}")
    if len(matched) > 1:
        listed = " and ".join(f"rules[{i}]" for i in matched)
        raise ExpressionError(
            label,
            f"{listed} match {_describe_values(used)} but hit is unique; "
            "the table was not checked with check_table",
        )
    return DecisionResult(matched[0], dict(table.rules[matched[0]].then), used)


# --------------------------------------------------------------------------- checking

TablePath = tuple[str | int, ...]
TableProblem = tuple[TablePath, str]


def _when_problems(table: DecisionTable) -> list[TableProblem]:
    problems: list[TableProblem] = []
    declared_in = ", ".join(table.inputs)
    for r, rule in enumerate(table.rules):
        for key, cell in rule.when.items():
            path: TablePath = ("rules", r, "when", key)
            spec = table.inputs.get(key)
            if spec is None:
                problems.append((path, f"{key!r} is not a declared input (inputs: {declared_in})"))
            elif cell.is_any:
                continue
            elif spec.type == "number":
                if cell.numbers is None:
                    problems.append(
                        (path, f"{key} is a number input; {cell.source!r} is not {CELL_SYNTAX}")
                    )
            elif cell.literals is None:
                problems.append(
                    (
                        path,
                        f"{key} is a{'n' if spec.type == 'enum' else ''} {spec.type} input; "
                        f"{cell.source!r} is a number range or comparison",
                    )
                )
            elif spec.type == "enum":
                for value in sorted(cell.literals, key=str):
                    if not isinstance(value, str) or value not in (spec.values or ()):
                        problems.append(
                            (
                                path,
                                f"{value!r} is not a value of {key} "
                                f"(values: {', '.join(spec.values or ())})",
                            )
                        )
            elif any(not isinstance(v, bool) for v in cell.literals):
                problems.append((path, f"{key} is a boolean input; write true, false or '-'"))
    return problems


def _then_problems(table: DecisionTable) -> list[TableProblem]:
    problems: list[TableProblem] = []
    declared_out = ", ".join(table.outputs)
    for r, rule in enumerate(table.rules):
        given = set(rule.then)
        for missing in (o for o in table.outputs if o not in given):
            problems.append((("rules", r, "then"), f"missing output {missing!r}"))
        for extra in (k for k in rule.then if k not in table.outputs):
            problems.append(
                (
                    ("rules", r, "then", extra),
                    f"{extra!r} is not a declared output (outputs: {declared_out})",
                )
            )
    return problems


@dataclass(frozen=True)
class _Piece:
    """One elementary piece of an input's domain: every rule holds all of it or none."""

    text: str | None  # None: the input is unconstrained here, so messages leave it out
    mask: int  # bit r set when rules[r] covers the piece
    interval: Interval | None = None  # for number inputs, so neighbouring gaps can merge


def _number_pieces(spec: InputSpec, cells: list[Cell]) -> list[Interval]:
    domain = spec.domain()
    cuts = {b for cell in cells for i in cell.numbers or () for b in i.bounds()}
    cuts.update(domain.bounds())
    points = sorted(b for b in cuts if domain.contains(b))
    if not points:
        return [domain]
    pieces: list[Interval] = []
    if spec.min is None:
        pieces.append(Interval(None, False, points[0], False))
    for k, point in enumerate(points):
        pieces.append(Interval(point, True, point, True))
        if k + 1 < len(points):
            pieces.append(Interval(point, False, points[k + 1], False))
    if spec.max is None:
        pieces.append(Interval(points[-1], False, None, False))
    return pieces


def _domain_pieces(table: DecisionTable, name: str, spec: InputSpec) -> list[Interval | str | bool]:
    if spec.type == "number":
        return list(_number_pieces(spec, [rule.when.get(name, ANY_CELL) for rule in table.rules]))
    return list(spec.values or ()) if spec.type == "enum" else [False, True]


def _mask(covers: Iterable[bool]) -> int:
    # one string, one int: summing 1 << r would be quadratic in the number of rules
    bits = "".join("1" if hit else "0" for hit in covers)
    return int(bits[::-1] or "0", 2)


def _pieces(table: DecisionTable, name: str, domain: list[Interval | str | bool]) -> list[_Piece]:
    cells = [rule.when.get(name, ANY_CELL) for rule in table.rules]
    pieces: list[_Piece] = []
    for piece in domain:
        if isinstance(piece, Interval):
            text = piece.describe(name) if len(domain) > 1 else None
            covered = _mask(any(i.covers(piece) for i in c.numbers or ()) for c in cells)
            pieces.append(_Piece(text, covered, piece))
        else:
            shown = str(piece).lower() if isinstance(piece, bool) else piece
            pieces.append(_Piece(f"{name}={shown}", _mask(c.matches(piece) for c in cells)))
    return pieces


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _merged(name: str, pieces: list[_Piece], first: int, last: int) -> str | None:
    """One description for the uncovered number pieces first..last, which are adjacent."""
    if first == 0 and last == len(pieces) - 1:
        return None
    lo, hi = pieces[first].interval, pieces[last].interval
    assert lo is not None and hi is not None
    return Interval(lo.lo, lo.lo_closed, hi.hi, hi.hi_closed).describe(name)


def check_table(table: DecisionTable) -> list[TableProblem]:
    """Problems of a validated table as (path inside the table, message).

    Gaps and overlaps are found exactly, not by sampling: each input's domain is cut at
    every bound any cell uses into points and the open stretches between them, so on
    every cell of that grid each rule matches either everywhere or nowhere.
    """
    unreadable = _when_problems(table)
    problems = unreadable + _then_problems(table)
    if unreadable:
        return problems  # coverage computed from cells we cannot read would only mislead
    domains = {name: _domain_pieces(table, name, spec) for name, spec in table.inputs.items()}
    size = prod(len(d) for d in domains.values())
    checks = len(table.rules) * sum(len(d) for d in domains.values())
    if size > MAX_GRID or checks > MAX_CHECKS:
        problems.append(
            (
                ("rules",),
                f"the table is too large to check ({size} input combinations, "
                f"{len(table.rules)} rules; the limits are {MAX_GRID} combinations and "
                f"{MAX_CHECKS} rule-by-piece checks); split it into smaller tables "
                "or bound number inputs with min/max",
            )
        )
        return problems
    grid = [_pieces(table, name, domain) for name, domain in domains.items()]

    names = list(table.inputs)
    gaps: list[str] = []
    overlaps: dict[tuple[int, int], str] = {}
    reached = 0  # rules that decide some combination
    matched = 0  # rules that match some combination

    def walk(depth: int, mask: int, chosen: list[str | None]) -> None:
        nonlocal reached, matched
        if depth == len(grid):
            matched |= mask
            if table.hit == "first":
                reached |= mask & -mask  # the lowest rule decides
                return
            reached |= mask
            if not mask & (mask - 1):
                return  # exactly one rule: as unique demands
            if len(overlaps) >= MAX_OVERLAPS_LISTED:
                return  # enough to act on; listing every pair of a big clash helps nobody
            hits = list(_bits(mask))
            where = ", ".join(t for t in chosen if t) or "every input"
            for a, first in enumerate(hits):
                for second in hits[a + 1 :]:
                    if len(overlaps) >= MAX_OVERLAPS_LISTED:
                        return
                    overlaps.setdefault((first, second), where)
            return
        pieces = grid[depth]
        k = 0
        while k < len(pieces):
            sub = mask & pieces[k].mask
            if sub:
                walk(depth + 1, sub, [*chosen, pieces[k].text])
                k += 1
                continue
            # no rule left: the rest of the inputs do not matter, and neighbouring
            # uncovered stretches of a number line are one gap, not many
            last = k
            if pieces[k].interval is not None:
                while last + 1 < len(pieces) and not mask & pieces[last + 1].mask:
                    last += 1
                text = _merged(names[depth], pieces, k, last)
            else:
                text = pieces[k].text
            gaps.append(", ".join(t for t in [*chosen, text] if t) or "any input")
            k = last + 1

    walk(0, (1 << len(table.rules)) - 1, [])

    for gap in gaps[:MAX_GAPS_LISTED]:
        problems.append((("rules",), f"no rule covers {gap}; add a rule for it"))
    if len(gaps) > MAX_GAPS_LISTED:
        more = len(gaps) - MAX_GAPS_LISTED
        problems.append((("rules",), f"uncovered cases beyond those listed: {more} more"))
    if len(overlaps) >= MAX_OVERLAPS_LISTED:
        problems.append(
            (("rules",), f"only the first {MAX_OVERLAPS_LISTED} overlapping pairs are listed")
        )
    for (first, second), where in overlaps.items():
        message = (
            f"rules[{first}] and rules[{second}] overlap for {where}; under hit: unique "
            "exactly one rule may match: make them disjoint, or use hit: first"
        )
        problems.append((("rules", first), message))
        problems.append((("rules", second), message))
    for r in range(len(table.rules)):
        if reached >> r & 1:
            continue
        why = (
            "earlier rules already match every case it covers"
            if matched >> r & 1
            else "its cells match nothing inside the inputs' domains"
        )
        problems.append((("rules", r), f"rules[{r}] can never decide: {why}"))
    return problems


# --------------------------------------------------------------------------- loading


def load_decisions(doc: Document, data: Any, base_path: PathKey) -> dict[str, DecisionTable]:
    """Validate a ``decisions:`` mapping from ``doc``; raise DefinitionError with every
    problem of every table, each at its file:line:col."""
    if not isinstance(data, Mapping):
        raise DefinitionError(
            [doc.problem(base_path, "decisions must be a mapping of table names to tables")]
        )
    problems: list[Problem] = []
    tables: dict[str, DecisionTable] = {}
    for name, raw in data.items():
        base = (*base_path, name)
        if not isinstance(name, str) or not name.isidentifier():
            problems.append(
                doc.problem(
                    base,
                    f"decision name {name!r} must be an identifier (letters, digits, underscores)",
                )
            )
            continue
        try:
            table = DecisionTable.model_validate(raw, context={"decision_name": name})
        except ValidationError as exc:
            problems.extend(pydantic_problems(doc, exc, base))
            continue
        found = check_table(table)
        problems.extend(doc.problem((*base, *path), message) for path, message in found)
        if not found:
            tables[name] = table
    if problems:
        raise DefinitionError(problems)
    return tables
