"""Decision tables: the bands and routes of a policy written as data, checked before use.

Policies such as the credit-override routes (第十一条) or the customer grading scores are
tables of ranges. This module holds the table model, its loading from a process file
(every problem of every table at its file:line:col, after ``engine.tablecheck`` has
checked coverage) and its evaluation; the cells themselves are ``engine.cells``.

This module is pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.cells import CellField, Interval, NumberField, parse_number, show_number
from engine.errors import DefinitionError, ExpressionError, Problem
from engine.tablecheck import check_table
from engine.validation import Frozen, pydantic_problems
from engine.yamlsafe import Document, PathKey

__all__ = [
    "DecisionResult",
    "DecisionTable",
    "InputSpec",
    "Rule",
    "evaluate",
    "load_decisions",
]

OutputValue = str | bool | int | Decimal | None


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
                {"lo": show_number(self.min), "hi": show_number(self.max)},
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
            label,
            f"input {name!r} is {show_number(number)}, below its minimum {show_number(spec.min)}",
        )
    if spec.max is not None and number > spec.max:
        raise ExpressionError(
            label,
            f"input {name!r} is {show_number(number)}, above its maximum {show_number(spec.max)}",
        )
    return number


def _describe_values(values: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k}={show_number(v) if isinstance(v, Decimal) else repr(v)}" for k, v in values.items()
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
