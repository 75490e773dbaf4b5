"""Owner-defined reports (``report:`` files in the processes folder), as typed models.

A process owner writes what a manager reads each month without writing code: which
processes, which instances (a variable's values, a period by start or close), how to group
them (handler, a variable, process, state, outcome, month) and what to count (received,
on time, late, extended, open, overdue, handling time, escalations). The model is checked
like a process file, every problem with file:line:col, and cross-checked against the
processes and the org directory by :func:`check_report`. ``service.ownerreports`` runs it.

Sources: ``instances`` (an instance with its tasks and audit entries), or a register
(``source: {register: NAME}``): the book as it stood at the period's end, grouped by its
fields, with measures of its own (rows, rows added or changed in the period, sums of
number fields), e.g. the bad-debt register by branch for a finance controller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, PlainValidator, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from engine.errors import DefinitionError, Problem
from engine.validation import Frozen, pydantic_problems
from engine.yamlsafe import Document, PathKey

if TYPE_CHECKING:
    from engine.process import CompiledProcess
    from engine.registers import RegisterSpec

NAME = r"^[a-z][a-z0-9_-]{0,63}$"

Measure = Literal[
    "received",  # instances in the report (started, or closed, in the period)
    "closed",  # of those, finished (completed, rejected, withdrawn...)
    "open",  # of those, still active now
    "on_time",  # answered by the deadline (inclusive)
    "late",  # answered after the deadline
    "on_time_pct",  # on_time / (on_time + late), one decimal
    "extended",  # the deadline was extended at least once
    "overdue",  # not answered, and the deadline has passed as of now
    "escalations",  # escalation levels fired for these instances
    "mean_time",  # handling time (see ``time:``)
    "median_time",
    "p90_time",
]
MEASURES: tuple[str, ...] = Measure.__args__  # type: ignore[attr-defined]
RegisterMeasure = Literal[
    "rows",  # rows in the book at the period's end
    "added",  # of those, first written in the period
    "changed",  # of those, written (added or changed) in the period
]
REGISTER_MEASURES: tuple[str, ...] = RegisterMeasure.__args__  # type: ignore[attr-defined]
GroupName = Literal["process", "state", "outcome", "month", "handler"]


class VariableKey(Frozen):
    """Group by the value of one variable of the instances (e.g. ``{variable: kind}``)."""

    variable: str = Field(pattern=r"^[a-z][a-z0-9_]*$")


class FieldKey(Frozen):
    """Group a register's rows by the value of one field (e.g. ``{field: branch}``)."""

    field: str = Field(pattern=r"^[a-z][a-z0-9_]*$")


GROUP_NAMES: tuple[str, ...] = GroupName.__args__  # type: ignore[attr-defined]


def _group_key(value: Any) -> Any:
    """One clear message for a wrong group key, not one per member of the union."""
    if isinstance(value, dict) and "field" in value:
        return FieldKey.model_validate(value)
    if isinstance(value, dict):
        return VariableKey.model_validate(value)
    if isinstance(value, str) and value in GROUP_NAMES:
        return value
    raise PydanticCustomError(
        "report_group",
        "group_by takes {names}, {variable} or {field}, got {value}",
        {
            "names": ", ".join(GROUP_NAMES),
            "variable": "{variable: NAME}",
            "field": "{field: NAME} (a register source)",
            "value": repr(value),
        },
    )


GroupKey = Annotated[
    GroupName | VariableKey | FieldKey,
    PlainValidator(_group_key, json_schema_input_type=GroupName | VariableKey | FieldKey),
]
Value = str | int | bool


class Handler(Frozen):
    """Who handled an instance: the last person to take one of ``actions`` on it."""

    actions: tuple[str, ...] = Field(min_length=1)


class StateDeadline(Frozen):
    """On time means: the task of ``state`` was decided by its own deadline."""

    state: str


class HandlingTime(Frozen):
    """Handling time runs from the instance's start ``to`` its answer or its close.

    ``answered``: the instance deadline clock stopped (the answer was given); an instance
    without one is timed to its close. ``working_hours``/``working_days`` leave out the
    non-working days of the process calendar (a working day counts 24 hours).
    """

    to: Literal["answered", "closed"] = "closed"
    unit: Literal["hours", "days", "working_hours", "working_days"] = "hours"


class Section(Frozen):
    title: str = Field(min_length=1)
    group_by: tuple[GroupKey, ...] = ()
    measures: tuple[Measure | RegisterMeasure, ...] = Field(min_length=1)
    sum: tuple[str, ...] = Field(
        default=(),
        description="A register source: number fields summed over the rows of each group "
        "(columns sum_FIELD).",
    )
    chart: str | None = Field(
        default=None, description="One of the section's measures (or sum_FIELD), as bars."
    )

    @model_validator(mode="after")
    def _chart_is_a_measure(self) -> Section:
        columns = (*self.measures, *(f"sum_{f}" for f in self.sum))
        if self.chart is not None and self.chart not in columns:
            raise ValueError(f"chart {self.chart!r} is not one of this section's measures")
        return self


class RegisterSource(Frozen):
    """Report on a register's rows instead of instances."""

    # `register` in YAML; `name` here: a pydantic field called register shadows BaseModel's
    name: str = Field(alias="register", pattern=r"^[a-z][a-z0-9_]{0,63}$")


class ReportSchedule(Frozen):
    """Produce the report once per cron slot and send it to roles.

    ``period``: ``previous_month`` (the calendar month before the slot's, in the display
    zone) or ``month_to_date`` (from the 1st of the slot's month to the slot).
    """

    cron: str | tuple[str, ...]
    period: Literal["previous_month", "month_to_date"] = "previous_month"
    send_to: tuple[str, ...] = Field(min_length=1)

    @property
    def crons(self) -> tuple[str, ...]:
        return (self.cron,) if isinstance(self.cron, str) else self.cron


class ReportSpec(Frozen):
    report: str = Field(pattern=NAME)
    title: str = Field(min_length=1)
    description: str | None = None
    source: Literal["instances"] | RegisterSource = "instances"
    processes: tuple[str, ...] = Field(
        default=(), description="The processes an instances report reads (one or more)."
    )
    where: dict[str, Value | tuple[Value, ...]] = Field(default_factory=dict)
    period: Literal["started", "closed"] = "started"
    deadline: Literal["instance"] | StateDeadline = "instance"
    handler: Handler | None = None
    time: HandlingTime = HandlingTime()
    sections: tuple[Section, ...] = Field(min_length=1)
    schedule: ReportSchedule | None = None

    @model_validator(mode="after")
    def _source_fits(self) -> ReportSpec:
        register = isinstance(self.source, RegisterSource)
        if not register and not self.processes:
            raise ValueError("an instances report needs 'processes' (one or more)")
        if register and self.processes:
            raise ValueError("a register report reads no processes: remove 'processes'")
        for section in self.sections:
            own = REGISTER_MEASURES if register else MEASURES
            wrong = [m for m in section.measures if m not in own]
            if wrong:
                kind = "a register" if register else "an instances"
                raise ValueError(
                    f"section {section.title!r}: {', '.join(wrong)} is not a measure of "
                    f"{kind} report; choose from {', '.join(own)}"
                )
            keys = [k for k in section.group_by if isinstance(k, FieldKey) != register]
            if keys:
                raise ValueError(
                    f"section {section.title!r}: a register report groups by {{field: NAME}} "
                    "only, an instances report never by a field"
                )
            if section.sum and not register:
                raise ValueError(f"section {section.title!r}: 'sum' is for a register report")
        return self

    def allowed(self, variable: str) -> tuple[Value, ...] | None:
        value = self.where.get(variable)
        if value is None:
            return None
        return value if isinstance(value, tuple) else (value,)

    @property
    def variables(self) -> tuple[str, ...]:
        """Variables the report groups by."""
        return tuple(
            k.variable for s in self.sections for k in s.group_by if isinstance(k, VariableKey)
        )

    @property
    def register(self) -> str | None:
        """The register a register report reads (None: an instances report)."""
        return self.source.name if isinstance(self.source, RegisterSource) else None


def load_report(doc: Document) -> ReportSpec:
    try:
        return ReportSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise DefinitionError(pydantic_problems(doc, exc)) from None


# Reports the CLI already has: an owner's file may not shadow them.
BUILT_IN_NAMES = ("outcomes", "on-time", "durations", "overdue", "escalations", "summary")


class ProcessFacts(Frozen):
    """What the cross-check needs of a process (kept apart from CompiledProcess so the
    check runs on deployed versions and folder files alike)."""

    name: str
    variables: tuple[str, ...]
    states: tuple[str, ...]
    actions: tuple[str, ...]
    task_states_with_deadline: tuple[str, ...]
    has_instance_deadline: bool


def process_facts(proc: CompiledProcess) -> ProcessFacts:
    spec = proc.spec
    actions = {a for s in spec.states.values() if s.task for a in s.task.actions}
    return ProcessFacts(
        name=spec.process,
        variables=tuple(spec.variables),
        states=tuple(spec.states),
        actions=tuple(sorted(actions)),
        task_states_with_deadline=tuple(
            n for n, s in spec.states.items() if s.task is not None and s.deadline is not None
        ),
        has_instance_deadline=spec.deadline is not None,
    )


def check_report(
    spec: ReportSpec,
    doc: Document,
    processes: dict[str, ProcessFacts] | None,
    roles: set[str] | None,
    registers: dict[str, RegisterSpec] | None = None,
) -> list[Problem]:
    """Problems a valid model can still have: names of things that do not exist.

    ``processes`` None: no process was loaded with the report (a report file validated on
    its own), so only what does not depend on them is checked; ``roles`` None: the org
    directory did not load (its own problems are reported), so roles are not checked.
    """
    problems: list[Problem] = []

    def add(path: PathKey, message: str) -> None:
        problems.append(doc.problem(path, message))

    if spec.report in BUILT_IN_NAMES:
        add(("report",), f"{spec.report!r} is a built-in report; choose another name")
    if spec.register is not None:
        problems.extend(_check_register_report(spec, doc, registers))
    known = [processes[p] for p in spec.processes if p in processes] if processes else []
    for i, name in enumerate(spec.processes):
        if processes is not None and name not in processes:
            add(("processes", i), f"unknown process {name!r}")
    for var in spec.where:
        for proc in known:
            if var not in proc.variables:
                add(("where", var), f"process {proc.name!r} has no variable {var!r}")
    for si, section in enumerate(spec.sections):
        for gi, key in enumerate(section.group_by):
            path = ("sections", si, "group_by", gi)
            if isinstance(key, VariableKey):
                for proc in known:
                    if key.variable not in proc.variables:
                        add(path, f"process {proc.name!r} has no variable {key.variable!r}")
            elif key == "handler" and spec.handler is None:
                add(path, "group_by handler needs 'handler: {actions: [...]}' in the report")
    if spec.handler is not None and processes is not None:
        for i, action in enumerate(spec.handler.actions):
            if not any(action in p.actions for p in known):
                add(("handler", "actions", i), f"no process of the report has action {action!r}")
    if isinstance(spec.deadline, StateDeadline):
        for proc in known:
            if spec.deadline.state not in proc.task_states_with_deadline:
                add(
                    ("deadline", "state"),
                    f"process {proc.name!r} has no task state {spec.deadline.state!r} "
                    "with a deadline",
                )
    else:
        uses_deadline = {"on_time", "late", "on_time_pct", "extended", "overdue"}
        if any(m in uses_deadline for s in spec.sections for m in s.measures):
            for proc in known:
                if not proc.has_instance_deadline:
                    add(
                        ("deadline",),
                        f"process {proc.name!r} has no instance deadline ('deadline:' at its "
                        "top): name a state, e.g. deadline: {state: NAME}",
                    )
    if spec.schedule is not None:
        from engine.cron import cron_trigger

        for i, expr in enumerate(spec.schedule.crons):
            path: PathKey = (
                ("schedule", "cron")
                if isinstance(spec.schedule.cron, str)
                else (
                    "schedule",
                    "cron",
                    i,
                )
            )
            try:
                cron_trigger(expr, "UTC")
            except ValueError as exc:
                add(path, f"bad cron {expr!r}: {exc}")
        for i, role in enumerate(spec.schedule.send_to):
            if roles is not None and role not in roles:
                add(("schedule", "send_to", i), f"unknown role {role!r} (see org.yaml roles)")
    return problems


NUMBER_TYPES = ("integer", "decimal", "money", "percent")


def _check_register_report(
    spec: ReportSpec, doc: Document, registers: dict[str, RegisterSpec] | None
) -> list[Problem]:
    """The register exists and has the fields the report filters, groups and sums by.
    ``registers`` None: the report was validated without the register files."""
    if registers is None:
        return []
    problems: list[Problem] = []
    reg = registers.get(spec.register or "")
    if reg is None:
        known = ", ".join(sorted(registers)) or "none"
        return [
            doc.problem(
                ("source", "register"), f"unknown register {spec.register!r}; known: {known}"
            )
        ]

    def field(path: PathKey, name: str, numbers: bool = False) -> None:
        if name not in reg.fields:
            fields = ", ".join(reg.fields)
            problems.append(
                doc.problem(
                    path, f"register {reg.name!r} has no field {name!r}; its fields: {fields}"
                )
            )
        elif numbers and str(reg.fields[name].type.value) not in NUMBER_TYPES:
            problems.append(doc.problem(path, f"field {name!r} is not a number; only numbers sum"))

    for name in spec.where:
        field(("where", name), name)
    for si, section in enumerate(spec.sections):
        for gi, key in enumerate(section.group_by):
            if isinstance(key, FieldKey):
                field(("sections", si, "group_by", gi), key.field)
        for fi, name in enumerate(section.sum):
            field(("sections", si, "sum", fi), name, numbers=True)
    return problems
