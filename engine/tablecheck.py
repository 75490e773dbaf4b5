"""Checking a decision table as a whole: every case covered, under ``hit: unique`` once.

Written as ``if`` chains, policy bands silently grow holes and overlaps at their
boundaries; written as a table they can be checked exactly, before any instance runs:
a gap would stop an instance at run time, an overlap means the policy text was
transcribed ambiguously. Kept apart from the table model because only loading a table
needs it, never evaluating one.

This module is pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING

from engine.cells import ANY_CELL, CELL_SYNTAX, Cell, Interval

if TYPE_CHECKING:
    from engine.decisions import DecisionTable, InputSpec

__all__ = ["MAX_CHECKS", "MAX_GRID", "MAX_OVERLAPS_LISTED", "TableProblem", "check_table"]

MAX_GRID = 100_000
"""Most input combinations check_table will enumerate; beyond it the table is refused."""

MAX_CHECKS = 2_000_000
"""Most rule-against-piece tests check_table will make, so a hostile file stays cheap."""

MAX_GAPS_LISTED = 10
"""Gaps listed one by one; more would bury the first, which usually explains the rest."""

MAX_OVERLAPS_LISTED = 20
"""Overlapping rule pairs collected before the check stops looking for more."""

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
