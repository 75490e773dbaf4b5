"""Built-in reports for managers: how many, how fast, how late, over a period.

Every process gets them without writing anything: instances by outcome, the on-time rate
of its tasks, time spent per state and per handler (median and p90), what is overdue now,
and escalations. Each report is a list of sections (a table with an optional bar chart),
so the CLI prints it as a table, JSON or CSV and ``service.reporthtml`` draws it into
one self-contained HTML file. Rows are computed while the store streams them: only the
durations of one group are held at a time, never the month's rows.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from engine.errors import NotFound, WorkflowError

if TYPE_CHECKING:
    from storage.store import Store

HOUR = Decimal(3600)
CENT = Decimal("0.01")
TENTH = Decimal("0.1")


@dataclass(frozen=True)
class Section:
    """One table of a report; ``chart`` names the (label, value) columns to draw as bars."""

    title: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    chart: tuple[str, str] | None = None


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    since: datetime
    until: datetime
    generated_at: datetime
    process: str | None = None
    sections: list[Section] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "report": self.name,
            "title": self.title,
            "from": self.since.isoformat(),
            "to": self.until.isoformat(),
            "generated_at": self.generated_at.isoformat(),
            "process": self.process,
            "sections": [
                {"title": s.title, "columns": list(s.columns), "rows": s.rows}
                for s in self.sections
            ],
        }


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime
    now: datetime
    process: str | None = None
    # what one pass over the period's decided tasks found, shared by the sections that
    # need it, so "summary" reads those tasks once
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class DecidedTasks:
    """One pass over the tasks decided in a period."""

    tally: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    per_state: dict[tuple[str, ...], list[Decimal]] = field(default_factory=dict)
    per_handler: dict[tuple[str, ...], list[Decimal]] = field(default_factory=dict)


def decided_tasks(store: Store, p: Period) -> DecidedTasks:
    if "decided" in p.memo:
        return p.memo["decided"]  # type: ignore[no-any-return]
    found = DecidedTasks(defaultdict(Counter), defaultdict(list), defaultdict(list))
    for row in store.reports.tasks_closed(p.since, p.until, p.process):
        if row["status"] != "done":
            continue  # cancelled: nobody decided it
        c = found.tally[row["process"], row["state"]]
        c["decided"] += 1
        if row["due_at"] is None:
            c["no_deadline"] += 1
        elif row["closed_at"] <= row["due_at"]:
            c["on_time"] += 1
        else:
            c["late"] += 1
        spent = hours((row["closed_at"] - row["created_at"]).total_seconds())
        found.per_state[row["process"], row["state"]].append(spent)
        found.per_handler[row["process"], row["decided_by"] or "-"].append(spent)
    p.memo["decided"] = found
    return found


def hours(seconds: float | Decimal) -> Decimal:
    return (Decimal(seconds) / HOUR).quantize(CENT, ROUND_HALF_UP)


def median(values: list[Decimal]) -> Decimal:
    """The middle value (the mean of the two middle ones for an even count)."""
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    if n % 2:
        return ordered[mid]
    return ((ordered[mid - 1] + ordered[mid]) / 2).quantize(CENT, ROUND_HALF_UP)


def percentile(values: list[Decimal], q: int) -> Decimal:
    """Nearest-rank percentile: the smallest value with at least q% of values at or below."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered) / 100))
    return ordered[rank - 1]


def rate(part: int, whole: int) -> Decimal | None:
    """A percentage with one decimal; None when there is nothing to divide."""
    if whole == 0:
        return None
    return (Decimal(part) * 100 / whole).quantize(TENTH, ROUND_HALF_UP)


# --------------------------------------------------------------------------- sections


def outcomes(store: Store, p: Period) -> Section:
    """Instances started in the period, by where they ended up (or that they still run)."""
    counts: Counter[tuple[str, str]] = Counter()
    for row in store.reports.instances_started(p.since, p.until, p.process):
        result = row["outcome"] or row["status"]
        counts[row["process"], result] += 1
    rows = [
        {"process": proc, "result": result, "instances": n, "label": f"{proc}: {result}"}
        for (proc, result), n in sorted(counts.items())
    ]
    return Section(
        "Instances started, by outcome",
        ("process", "result", "instances"),
        rows,
        chart=("label", "instances"),
    )


def on_time(store: Store, p: Period) -> Section:
    """Tasks decided in the period: decided by their deadline, late, or without one."""
    tally = decided_tasks(store, p).tally
    rows = []
    for (proc, state), c in sorted(tally.items()):
        dated = c["on_time"] + c["late"]
        rows.append(
            {
                "process": proc,
                "state": state,
                "decided": c["decided"],
                "on_time": c["on_time"],
                "late": c["late"],
                "no_deadline": c["no_deadline"],
                "on_time_pct": rate(c["on_time"], dated),
                "label": f"{proc}: {state}",
            }
        )
    return Section(
        "Tasks decided, on time or late (on_time_pct of those with a deadline)",
        ("process", "state", "decided", "on_time", "late", "no_deadline", "on_time_pct"),
        rows,
        chart=("label", "on_time_pct"),
    )


def _duration_rows(
    groups: dict[tuple[str, ...], list[Decimal]], names: tuple[str, ...]
) -> list[dict[str, Any]]:
    rows = []
    for group_key, values in sorted(groups.items()):
        mean = (sum(values, Decimal(0)) / len(values)).quantize(CENT, ROUND_HALF_UP)
        rows.append(
            dict(zip(names, group_key, strict=True))
            | {
                "tasks": len(values),
                "mean_h": mean,
                "median_h": median(values),
                "p90_h": percentile(values, 90),
                "label": ": ".join(group_key),
            }
        )
    return rows


def time_per_state(store: Store, p: Period) -> Section:
    groups = decided_tasks(store, p).per_state
    return Section(
        "Time from a task opening to its decision, per state (hours)",
        ("process", "state", "tasks", "mean_h", "median_h", "p90_h"),
        _duration_rows(groups, ("process", "state")),
        chart=("label", "median_h"),
    )


def time_per_handler(store: Store, p: Period) -> Section:
    groups = decided_tasks(store, p).per_handler
    return Section(
        "Time from a task opening to its decision, per handler (hours)",
        ("process", "handler", "tasks", "mean_h", "median_h", "p90_h"),
        _duration_rows(groups, ("process", "handler")),
        chart=("label", "median_h"),
    )


def overdue(store: Store, p: Period) -> Section:
    """Open tasks past their deadline now (``now``, not the period's end)."""
    rows = []
    for row in store.reports.tasks_overdue(p.now, p.process):
        rows.append(
            {
                "task": row["id"],
                "process": row["process"],
                "state": row["state"],
                "waiting_for": ", ".join(row["roles"]),
                "due_at": row["due_at"],
                "overdue_h": hours((p.now - row["due_at"]).total_seconds()),
            }
        )
    rows.sort(key=lambda r: (-r["overdue_h"], r["task"]))
    return Section(
        "Overdue now",
        ("task", "process", "state", "waiting_for", "due_at", "overdue_h"),
        rows,
        chart=("task", "overdue_h"),
    )


def escalations(store: Store, p: Period) -> Section:
    counts: Counter[tuple[str, str, str]] = Counter()
    for row in store.reports.audit_entries(p.since, p.until, ("escalation",), p.process):
        level = str((row["data"] or {}).get("level", ""))
        counts[row["process"], row["from_state"] or "-", level] += 1
    rows = [
        {
            "process": proc,
            "state": state,
            "level": level,
            "escalations": n,
            "label": f"{proc}: {state} L{level}",
        }
        for (proc, state, level), n in sorted(counts.items())
    ]
    return Section(
        "Escalations fired",
        ("process", "state", "level", "escalations"),
        rows,
        chart=("label", "escalations"),
    )


@dataclass(frozen=True)
class BuiltIn:
    title: str
    sections: tuple[Callable[[Store, Period], Section], ...]


BUILT_IN: dict[str, BuiltIn] = {
    "outcomes": BuiltIn("Instances by outcome", (outcomes,)),
    "on-time": BuiltIn("On-time rate", (on_time,)),
    "durations": BuiltIn(
        "Time spent per state and per handler", (time_per_state, time_per_handler)
    ),
    "overdue": BuiltIn("Overdue now", (overdue,)),
    "escalations": BuiltIn("Escalations", (escalations,)),
    "summary": BuiltIn(
        "Summary",
        (outcomes, on_time, time_per_state, time_per_handler, overdue, escalations),
    ),
}


def report_names() -> list[dict[str, str]]:
    return [{"report": name, "title": r.title} for name, r in BUILT_IN.items()]


def build_report(
    store: Store,
    name: str,
    since: datetime,
    until: datetime,
    now: datetime,
    process: str | None = None,
    known_processes: Iterable[str] | None = None,
) -> Report:
    """Run the built-in report ``name`` over ``[since, until)``; ``now`` dates "overdue"."""
    spec = BUILT_IN.get(name)
    if spec is None:
        raise NotFound("report", name, f"choose one of: {', '.join(BUILT_IN)}")
    if until <= since:
        raise WorkflowError(
            f"the period is empty: --to {until.isoformat()} is not after --from {since.isoformat()}"
        )
    if process is not None and known_processes is not None and process not in known_processes:
        raise NotFound("process", process, "see 'python run.py processes'")
    period = Period(since, until, now, process)
    return Report(
        name=name,
        title=spec.title,
        since=since,
        until=until,
        generated_at=now,
        process=process,
        sections=[make(store, period) for make in spec.sections],
    )
