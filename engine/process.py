"""From a validated ProcessSpec to a CompiledProcess, checking every cross-reference.

All problems in a file are gathered and raised together as one DefinitionError, each with
``file:line:col``, so a process owner fixes a broken file in one round.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from transitions import Machine

from engine.calendar import WorkingCalendar, default_calendar
from engine.decisions import DecisionTable, load_decisions
from engine.errors import DefinitionError, ExpressionError, InvalidData, Problem
from engine.expressions import BUILTIN_NAMES, Expression
from engine.model import NAME, DeadlineSpec, Duration, ProcessSpec, StateSpec, TaskMode
from engine.org import Org
from engine.validation import pydantic_problems
from engine.values import VarType, coerce
from engine.yamlsafe import Document, PathKey

NEW = "__new__"  # the machine's state before the first step
START_TRIGGER = "__start__"
ROUTE_TRIGGER = "__route__"
GOTO_PREFIX = "__goto__"  # escalation moves, from any state
SLA = "@sla"  # the pseudo-state of instance-wide deadline timers
MAX_DURATION = 36_600  # days or hours: a century of days is more than any policy needs
# expression functions that need the process calendar; bound at run time (runtime.context)
CALENDAR_FUNCTIONS = frozenset({"next_working_day"})


@dataclass
class CompiledProcess:
    """A process ready to run: spec, compiled expressions, decision tables and its machine.

    One per (process, version), cached by the service; instances are plain snapshots, never
    attached to the machine (``transitions`` scans attached models on every add).
    """

    spec: ProcessSpec
    source_hash: str
    source_text: str
    file: str
    known_roles: frozenset[str]
    known_users: frozenset[str] = frozenset()
    calendar: WorkingCalendar = field(default_factory=default_calendar)
    expressions: dict[str, Expression] = field(default_factory=dict)
    decisions: dict[str, DecisionTable] = field(default_factory=dict)
    machine: Machine | None = None
    cursor: Any = None  # the one model kept attached to the machine (see runtime.trigger)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.spec.process

    def expr(self, key: str) -> Expression:
        return self.expressions[key]


def source_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Checker:
    """Collects problems for one document."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Problem] = []

    def add(self, path: PathKey, message: str) -> None:
        self.problems.append(self.doc.problem(path, message))


def _check_expr(
    ck: _Checker,
    exprs: dict[str, Expression],
    key: str,
    source: str,
    path: PathKey,
    names: Iterable[str],
) -> None:
    try:
        expr = Expression(source)
    except ExpressionError as exc:
        ck.add(path, f"expression {source!r} {exc.reason}")
        return
    unknown = sorted(expr.names - set(names) - BUILTIN_NAMES - CALENDAR_FUNCTIONS)
    if unknown:
        ck.add(path, f"expression {source!r} uses unknown name(s): {', '.join(unknown)}")
        return
    line, col = ck.doc.where(path)
    expr.where = f"{ck.doc.file}:{line}:{col}"  # named by runtime errors such as ExpressionTooBig
    exprs[key] = expr


def compile_process(
    doc: Document,
    org: Org,
    calendars: Mapping[str, WorkingCalendar] | None = None,
    *,
    people: bool = True,
) -> CompiledProcess:
    """Validate a process document against the org and calendars, and compile it.

    Roles are structure and always checked. The people a process names (a schedule's
    ``as:``, user-typed defaults and schedule values) are checked only with ``people``:
    on for ``validate`` and ``deploy``, off when a stored version is recompiled, because
    its running instances must keep working whoever has come or gone since. Whether a
    person is active is never a definition question: a schedule resolves its user when
    the slot fires (see ``service.timekeeper``).
    """
    from pydantic import ValidationError

    try:
        spec = ProcessSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise DefinitionError(pydantic_problems(doc, exc)) from None
    roles = frozenset(org.roles)
    calendars = dict(calendars or {})
    calendars.setdefault("cn", default_calendar())
    ck = _Checker(doc)
    variables = spec.variables
    var_names = set(variables)
    exprs: dict[str, Expression] = {}

    for name, var in variables.items():
        if not re.match(NAME, name):
            ck.add(("variables", name), f"variable name {name!r} must match {NAME}")
        if var.live is not None:
            _check_expr(ck, exprs, f"live.{name}", var.live, ("variables", name, "live"), var_names)
        if (
            people
            and var.type is VarType.user
            and var.default is not None
            and var.default not in org.users
        ):
            ck.add(("variables", name, "default"), f"unknown user {var.default!r}")
        if var.default is not None:
            try:
                coerce(
                    name, var.type, var.default, values=var.values, minimum=var.min, maximum=var.max
                )
            except InvalidData as exc:
                ck.add(("variables", name, "default"), f"default: {exc.reason}")

    def check_roles(path: PathKey, names: Iterable[str]) -> None:
        for i, role in enumerate(names):
            if role not in roles:
                ck.add((*path, i) if not isinstance(names, str) else path, _unknown_role(role))

    check_roles(("confidential_to",), spec.confidential_to)
    if spec.owner_role is not None and spec.owner_role not in roles:
        ck.add(("owner_role",), _unknown_role(spec.owner_role))
    if spec.calendar not in calendars:
        ck.add(("calendar",), f"unknown calendar {spec.calendar!r}; known: {', '.join(calendars)}")

    decisions: dict[str, DecisionTable] = {}
    if spec.decisions:
        try:
            decisions = load_decisions(doc, spec.decisions, ("decisions",))
        except DefinitionError as exc:
            ck.problems.extend(exc.problems)
    for tname, table in decisions.items():
        for out in table.outputs:
            if out not in var_names:
                ck.add(
                    ("decisions", tname, "outputs"),
                    f"output {out!r} is not a declared variable; declare it under 'variables:'",
                )

    def check_inputs(path: PathKey, step: Any, key: str) -> None:
        for part in ("require", "accept"):
            for i, name in enumerate(getattr(step, part)):
                if name not in var_names:
                    ck.add((*path, part, i), f"unknown variable {name!r}")
        for name, source in step.set.items():
            if name not in var_names:
                ck.add((*path, "set", name), f"unknown variable {name!r}")
            _check_expr(ck, exprs, f"{key}.set.{name}", source, (*path, "set", name), var_names)

    states = spec.states
    for sname in states:
        if not re.match(NAME, sname):
            ck.add(("states", sname), f"state name {sname!r} must match {NAME}")

    def check_target(path: PathKey, target: str) -> None:
        if target not in states:
            known = ", ".join(sorted(states))
            ck.add(path, f"unknown target state {target!r}; states are: {known}")

    check_roles(("start", "roles"), spec.start.roles)
    check_target(("start", "to"), spec.start.to)
    check_inputs(("start",), spec.start, "start")

    for sname, state in states.items():
        base: PathKey = ("states", sname)
        for name, source in state.set.items():
            if name not in var_names:
                ck.add((*base, "set", name), f"unknown variable {name!r}")
            _check_expr(ck, exprs, f"{sname}.set.{name}", source, (*base, "set", name), var_names)
        for i, dec in enumerate(state.decide):
            table = decisions.get(dec.table)
            if table is None:
                if dec.table not in spec.decisions:
                    ck.add((*base, "decide", i, "table"), f"unknown decision table {dec.table!r}")
                continue
            for inp, source in dec.inputs.items():
                if inp not in table.inputs:
                    ck.add((*base, "decide", i, "inputs", inp), f"table has no input {inp!r}")
                _check_expr(
                    ck,
                    exprs,
                    f"{sname}.decide.{i}.{inp}",
                    source,
                    (*base, "decide", i, "inputs", inp),
                    var_names,
                )
            for inp in table.inputs:
                if inp not in dec.inputs and inp not in var_names:
                    ck.add(
                        (*base, "decide", i),
                        f"table input {inp!r} is neither given in 'inputs' nor a variable",
                    )
        if state.route:
            for i, branch in enumerate(state.route):
                check_target((*base, "route", i, "to"), branch.to)
                if branch.when is not None:
                    _check_expr(
                        ck,
                        exprs,
                        f"{sname}.route.{i}",
                        branch.when,
                        (*base, "route", i, "when"),
                        var_names,
                    )
            if state.route[-1].when is not None:
                ck.add(
                    (*base, "route", len(state.route) - 1),
                    "the last route branch needs no 'when' (the otherwise branch), "
                    "or an instance could get stuck here",
                )
        if state.task:
            _check_task(ck, exprs, spec, sname, state, roles, var_names, check_target, check_inputs)

    def check_state_names(path: PathKey, names: Iterable[str]) -> None:
        for i, name in enumerate(names):
            if name not in states:
                ck.add((*path, i), f"unknown state {name!r}")

    def check_deadline(path: PathKey, dl: DeadlineSpec, key: str) -> None:
        _check_duration(ck, exprs, path, dl, key, var_names)
        if dl.from_ is not None:
            _check_expr(ck, exprs, f"{key}.from", dl.from_, (*path, "from"), var_names)
        for i, esc in enumerate(dl.escalations):
            epath: PathKey = (*path, "escalations", i)
            if esc.after is not None:
                _check_duration(
                    ck, exprs, (*epath, "after"), esc.after, f"{key}.esc.{i}", var_names
                )
            check_roles((*epath, "notify"), esc.notify)
            if esc.reassign is not None and esc.reassign not in roles:
                ck.add((*epath, "reassign"), _unknown_role(esc.reassign))
            if esc.goto is not None:
                check_target((*epath, "goto"), esc.goto)
        for i, rem in enumerate(dl.reminders):
            _check_duration(
                ck, exprs, (*path, "reminders", i), rem.before, f"{key}.rem.{i}", var_names
            )

    if spec.deadline is not None:
        check_deadline(("deadline",), spec.deadline, "sla")
        check_state_names(("deadline", "until"), spec.deadline.until)
        check_state_names(("deadline", "paused_in"), spec.deadline.paused_in)
    for sname, state in states.items():
        if state.deadline is not None:
            check_deadline(("states", sname, "deadline"), state.deadline, f"{sname}.deadline")
        if state.task:
            for aname, action in state.task.actions.items():
                if action.extend is not None:
                    apath: PathKey = ("states", sname, "task", "actions", aname, "extend")
                    if spec.deadline is None:
                        ck.add(
                            apath, "'extend' needs an instance deadline ('deadline:' at the top)"
                        )
                    _check_duration(
                        ck,
                        exprs,
                        (*apath, "by"),
                        action.extend.by,
                        f"{sname}.{aname}.extend",
                        var_names,
                    )
    for i, sched in enumerate(spec.schedules):
        spath: PathKey = ("schedules", i)
        if people and sched.requester not in org.users:
            ck.add(
                (*spath, "as"),
                f"unknown user {sched.requester!r}; name a user of org.yaml (see 'run.py users')",
            )
        if sched.cron is not None:
            problem = cron_problem(sched.cron)
            if problem:
                ck.add((*spath, "cron"), problem)
        if sched.anchor is not None:
            try:
                from datetime import datetime as _dt

                if _dt.fromisoformat(sched.anchor).tzinfo is None:
                    ck.add((*spath, "anchor"), "anchor needs a UTC offset, e.g. +08:00")
            except ValueError:
                ck.add((*spath, "anchor"), f"anchor {sched.anchor!r} is not ISO 8601")
        if sched.every is not None:
            amount = sched.every.amount
            if isinstance(amount, str) or amount <= 0:
                ck.add((*spath, "every"), "'every' needs a number greater than 0")
        user = org.users.get(sched.requester) if people else None
        if user is not None and spec.start.roles and not set(user.roles) & set(spec.start.roles):
            ck.add(
                (*spath, "as"),
                f"user {sched.requester!r} may not start this process "
                f"(start.roles: {', '.join(spec.start.roles)})",
            )
        startable = set(spec.start.require) | set(spec.start.accept)
        for name, value in sched.set.items():
            if name not in var_names:
                ck.add((*spath, "set", name), f"unknown variable {name!r}")
                continue
            if name not in startable:
                ck.add((*spath, "set", name), f"{name!r} is not in start.require or start.accept")
            var = variables[name]
            try:
                coerce(name, var.type, value, values=var.values, minimum=var.min, maximum=var.max)
            except InvalidData as exc:
                ck.add((*spath, "set", name), exc.reason)
            if people and var.type is VarType.user and value not in org.users:
                ck.add((*spath, "set", name), f"unknown user {value!r}")
        missing = [n for n in spec.start.require if n not in sched.set]
        if missing and not _has_defaults(spec, missing):
            ck.add((*spath, "set"), f"the schedule must set {', '.join(missing)} (start.require)")
    if len({s.name for s in spec.schedules}) != len(spec.schedules):
        ck.add(("schedules",), "schedule names must be unique within a process")

    _check_graph(ck, spec)
    if ck.problems:
        raise DefinitionError(ck.problems)
    process = CompiledProcess(
        spec=spec,
        source_hash=source_hash(_source_text(doc)),
        source_text=_source_text(doc),
        file=doc.file,
        known_roles=roles,
        known_users=frozenset(org.users),
        calendar=calendars.get(spec.calendar, default_calendar()),
        expressions=exprs,
        decisions=decisions,
    )
    return attach_machine(process)


def attach_machine(process: CompiledProcess) -> CompiledProcess:
    """Give a process its transitions machine and the one cursor attached to it; also
    for a process loaded from a cache (service/defcache.py), as neither pickles."""
    process.machine = _build_machine(process)
    process.cursor = _Cursor()
    process.machine.add_model(process.cursor, initial=NEW)
    return process


class _Cursor:
    """The single model attached to a process's machine.

    Instances are snapshots, never machine models: ``transitions`` scans every attached
    model in ``add_model``, and attaching one per step costs more than the step. A firing
    sets this cursor to the snapshot's state, triggers, and reads the new state, under
    the process's lock.
    """

    state: str


def _has_defaults(spec: ProcessSpec, names: Iterable[str]) -> bool:
    return all(spec.variables[n].default is not None for n in names if n in spec.variables)


def _check_duration(
    ck: _Checker,
    exprs: dict[str, Expression],
    path: PathKey,
    dur: Duration,
    key: str,
    names: Iterable[str],
) -> None:
    amount = dur.amount
    if isinstance(amount, str):
        _check_expr(ck, exprs, f"{key}.amount", amount, (*path, dur.unit), names)
    elif amount < 0:
        ck.add((*path, dur.unit), "a duration cannot be negative")
    elif amount > MAX_DURATION:
        ck.add((*path, dur.unit), f"a duration above {MAX_DURATION} is refused")
    elif dur.unit != "hours" and int(amount) != amount:
        ck.add((*path, dur.unit), f"{dur.unit} must be a whole number")


def cron_problem(expr: str) -> str | None:
    """Why a five-field cron expression is invalid, or None."""
    from engine.cron import cron_trigger

    try:
        cron_trigger(expr, "UTC")
    except ValueError as exc:
        text = str(exc)
        return text if text.startswith("cron ") else f"cron {expr!r}: {text}"
    return None


def _source_text(doc: Document) -> str:
    return doc.text


def _unknown_role(role: str) -> str:
    return f"unknown role {role!r}; declare it in org.yaml under 'roles:'"


def _check_task(
    ck: _Checker,
    exprs: dict[str, Expression],
    spec: ProcessSpec,
    sname: str,
    state: StateSpec,
    roles: frozenset[str],
    var_names: set[str],
    check_target: Any,
    check_inputs: Any,
) -> None:
    task = state.task
    assert task is not None
    base: PathKey = ("states", sname, "task")
    if task.role is not None and task.role not in roles:
        ck.add((*base, "role"), _unknown_role(task.role))
    for i, role in enumerate(task.roles):
        if role not in roles:
            ck.add((*base, "roles", i), _unknown_role(role))
    if task.role_from is not None:
        _check_expr(
            ck, exprs, f"{sname}.role_from", task.role_from, (*base, "role_from"), var_names
        )
    if not task.actions:
        ck.add((*base, "actions"), "a task needs at least one action")
    if task.countersign is not None and task.countersign not in task.actions:
        ck.add((*base, "countersign"), f"countersign {task.countersign!r} is not an action here")
    if task.mode is not TaskMode.any and len(task.actions) < 1:
        ck.add((*base, "actions"), "a countersigned task needs actions")
    for aname, action in task.actions.items():
        apath: PathKey = (*base, "actions", aname)
        if not re.match(NAME, aname):
            ck.add(apath, f"action name {aname!r} must match {NAME}")
        check_target((*apath, "to"), action.to)
        if action.when is not None:
            _check_expr(
                ck, exprs, f"{sname}.{aname}.when", action.when, (*apath, "when"), var_names
            )
        check_inputs(apath, action, f"{sname}.{aname}")


def _check_graph(ck: _Checker, spec: ProcessSpec) -> None:
    """Every state reachable from the start, and every non-final state able to finish."""
    states = spec.states
    edges: dict[str, set[str]] = {name: set() for name in states}
    for name, st in states.items():
        if st.task:
            edges[name].update(a.to for a in st.task.actions.values() if a.to in states)
        edges[name].update(r.to for r in st.route if r.to in states)
        if st.deadline:
            edges[name].update(e.goto for e in st.deadline.escalations if e.goto in states)
    if spec.deadline:
        for esc in spec.deadline.escalations:
            if esc.goto in states:
                for name in states:
                    edges[name].add(esc.goto)
    if spec.start.to not in states:
        return
    seen = {spec.start.to}
    todo = [spec.start.to]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    for name in states:
        if name not in seen:
            ck.add(("states", name), f"state {name!r} is unreachable from the start")
    finals = {n for n, st in states.items() if st.final}
    if not finals:
        ck.add(("states",), "the process has no final state ('final: true')")
        return
    can_finish = set(finals)
    changed = True
    while changed:
        changed = False
        for name, outs in edges.items():
            if name not in can_finish and outs & can_finish:
                can_finish.add(name)
                changed = True
    for name in states:
        if name in seen and name not in can_finish:
            ck.add(
                ("states", name),
                f"state {name!r} is a dead end: no final state can be reached from it",
            )


def _build_machine(process: CompiledProcess) -> Machine:
    """The transitions machine: actions and routes as guarded transitions."""
    spec = process.spec
    transitions: list[dict[str, Any]] = [
        {"trigger": START_TRIGGER, "source": NEW, "dest": spec.start.to}
    ]
    for sname, state in spec.states.items():
        if state.task:
            for aname, action in state.task.actions.items():
                t: dict[str, Any] = {"trigger": aname, "source": sname, "dest": action.to}
                if action.when is not None:
                    t["conditions"] = [_guard(process.expressions[f"{sname}.{aname}.when"])]
                transitions.append(t)
        for i, branch in enumerate(state.route):
            t = {"trigger": ROUTE_TRIGGER, "source": sname, "dest": branch.to}
            if branch.when is not None:
                t["conditions"] = [_guard(process.expressions[f"{sname}.route.{i}"])]
            transitions.append(t)
    gotos = {e.goto for e in spec.deadline.escalations} if spec.deadline else set()
    for state in spec.states.values():
        if state.deadline:
            gotos |= {e.goto for e in state.deadline.escalations}
    for dest in sorted(g for g in gotos if g):
        transitions.append({"trigger": GOTO_PREFIX + dest, "source": "*", "dest": dest})
    return Machine(
        model=None,
        states=[NEW, *spec.states],
        transitions=transitions,
        initial=NEW,
        auto_transitions=False,
        send_event=True,
        ignore_invalid_triggers=False,
    )


def _guard(expr: Expression) -> Any:
    def check(event: Any) -> bool:
        return expr.test(event.kwargs["context"])

    check.__name__ = f"guard({expr.source})"
    return check
