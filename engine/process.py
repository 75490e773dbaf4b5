"""From a validated ProcessSpec to a CompiledProcess, checking every cross-reference.

All problems in a file are gathered and raised together as one DefinitionError, each with
``file:line:col``, so a process owner fixes a broken file in one round.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from transitions import Machine

from engine.assignees import Fallback, IfNone, Ref
from engine.calendar import WorkingCalendar, default_calendar
from engine.decisions import DecisionTable, load_decisions
from engine.errors import DefinitionError, ExpressionError, InvalidData, Problem
from engine.expressions import BUILTIN_NAMES, Expression
from engine.model import (
    NAME,
    ActionSpec,
    CcSpec,
    CommentRule,
    DeadlineSpec,
    DecideSpec,
    Duration,
    Escalation,
    Inputs,
    ProcessSpec,
    Reminder,
    ScheduleSpec,
    SpawnAs,
    SpawnSpec,
    StateSpec,
    TaskMode,
    TaskSpec,
)
from engine.org import Org
from engine.registers import REGISTER_FUNCTIONS, RegisterSpec
from engine.validation import parse_model
from engine.values import VarType, coerce
from engine.yamlsafe import Document, PathKey

NEW = "__new__"  # the machine's state before the first step
START_TRIGGER = "__start__"
ROUTE_TRIGGER = "__route__"
GOTO_PREFIX = "__goto__"  # escalation moves, from any state
SLA = "@sla"  # the pseudo-state of instance-wide deadline timers
# the state of a request sent back to its requester (退回到发起人): not in any file, added
# to every compiled process (``with_resubmit``); "__" keeps it apart from owners' names
RESUBMIT = "__resubmit__"
RESUBMIT_ACTIONS = ("resubmit", "withdraw")
MAX_DURATION = 36_600  # days or hours: a century of days is more than any policy needs
# expression functions that need the process calendar; bound at run time (runtime.context)
CALENDAR_FUNCTIONS = frozenset({"next_working_day"})
# names a spawn's set/when see with for_each, and the route of a waiting state
SPAWN_NAMES = frozenset({"item"})
CHILDREN_NAMES = frozenset({"children"})


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
    # the org chart as of compiling: tasks resolve their people from it when they open,
    # and operations check who may receive a task; data handed to the pure engine
    org: Org | None = None
    calendar: WorkingCalendar = field(default_factory=default_calendar)
    expressions: dict[str, Expression] = field(default_factory=dict)
    decisions: dict[str, DecisionTable] = field(default_factory=dict)
    machine: Machine | None = None  # read only, never attached to a model (steps.trigger)
    # the register definitions this process reads or writes (engine.registers), by name
    registers: dict[str, RegisterSpec] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.process

    def expr(self, key: str) -> Expression:
        return self.expressions[key]


def source_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class _Checker:
    """Checks one process document against the org and calendars, collecting every
    problem (each at its file:line:col) instead of stopping at the first.

    A method per part of the file, so each check can be read (and tested through
    ``compile_process``) on its own; what they compile on the way (expressions, decision
    tables) is kept for the process, so nothing is parsed twice.
    """

    doc: Document
    spec: ProcessSpec
    org: Org
    calendars: Mapping[str, WorkingCalendar]
    people: bool
    registers: Mapping[str, RegisterSpec] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    exprs: dict[str, Expression] = field(default_factory=dict)
    decisions: dict[str, DecisionTable] = field(default_factory=dict)

    @functools.cached_property
    def roles(self) -> frozenset[str]:
        return frozenset(self.org.roles)

    @functools.cached_property
    def var_names(self) -> set[str]:
        return set(self.spec.variables)

    @functools.cached_property
    def readable(self) -> frozenset[str]:
        """The registers this process's expressions may read (read and write lists)."""
        use = self.spec.registers
        return frozenset((*use.read, *use.write))

    def add(self, path: PathKey, message: str) -> None:
        self.problems.append(self.doc.problem(path, message))

    def run(self) -> None:
        """Every check, in the order the problems are reported."""
        spec = self.spec
        self.check_registers()
        self.check_variables()
        self.check_roles(("confidential_to",), spec.confidential_to)
        self.check_role(("owner_role",), spec.owner_role)
        self.check_if_none()
        if spec.calendar not in self.calendars:
            known = ", ".join(self.calendars)
            self.add(("calendar",), f"unknown calendar {spec.calendar!r}; known: {known}")
        self.check_decisions()
        for sname in spec.states:
            if not re.match(NAME, sname):
                self.add(("states", sname), f"state name {sname!r} must match {NAME}")
        self.check_roles(("start", "roles"), spec.start.roles)
        self.check_target(("start", "to"), spec.start.to)
        self.check_inputs(("start",), spec.start, "start")
        if spec.start.when is not None:
            self.check_expr("start.when", spec.start.when, ("start", "when"))
        for sname, state in spec.states.items():
            self.check_state(sname, state)
        if spec.deadline is not None:
            self.check_deadline(("deadline",), spec.deadline, "sla")
            self.check_state_names(("deadline", "until"), spec.deadline.until)
            self.check_state_names(("deadline", "paused_in"), spec.deadline.paused_in)
        for sname, state in spec.states.items():
            self.check_state_deadlines(sname, state)
        for i, sched in enumerate(spec.schedules):
            self.check_schedule(("schedules", i), sched)
        if len({s.name for s in spec.schedules}) != len(spec.schedules):
            self.add(("schedules",), "schedule names must be unique within a process")
        self.check_state_names(("withdraw", "in_states"), spec.withdraw.in_states)
        self.check_cc(("cc",), spec.cc)
        for sname, state in spec.states.items():
            self.check_cc(("states", sname, "cc"), state.cc)
        self.check_rollback()
        self.check_graph()

    def check_cc(self, path: PathKey, entries: Iterable[CcSpec]) -> None:
        """Readers to copy: known users (with ``people``), known roles, user variables."""
        for i, entry in enumerate(entries):
            if entry.user is not None and self.people and entry.user not in self.org.users:
                self.add((*path, i, "user"), f"unknown user {entry.user!r}; see 'run.py users'")
            self.check_role((*path, i, "role"), entry.role)
            if entry.variable is not None:
                var = self.spec.variables.get(entry.variable)
                if var is None or var.type is not VarType.user:
                    self.add(
                        (*path, i, "variable"),
                        f"{entry.variable!r} is not a variable of type user",
                    )

    # ------------------------------------------------------------------ building blocks

    def check_expr(
        self, key: str, source: str, path: PathKey, allow: frozenset[str] = frozenset()
    ) -> None:
        """Compile an expression into ``exprs[key]`` if it parses and names only variables
        (and the names ``allow`` adds there: ``item`` in a spawn, ``children`` after one)."""
        try:
            expr = Expression(source)
        except ExpressionError as exc:
            self.add(path, f"expression {source!r} {exc.reason}")
            return
        known = self.var_names | BUILTIN_NAMES | CALENDAR_FUNCTIONS | REGISTER_FUNCTIONS | allow
        unknown = sorted(expr.names - known)
        if unknown:
            self.add(path, f"expression {source!r} uses unknown name(s): {', '.join(unknown)}")
            return
        if not self.check_register_calls(path, expr):
            return
        line, col = self.doc.where(path)
        expr.where = f"{self.doc.file}:{line}:{col}"  # named by runtime errors (ExpressionTooBig)
        self.exprs[key] = expr

    def check_register_calls(self, path: PathKey, expr: Expression) -> bool:
        """Each register function names, as a quoted literal, a register this process
        declares under ``registers:`` (so what a process reads is known before it runs)."""
        ok = True
        for fn, name in expr.register_calls:
            if name is None:
                self.add(
                    path,
                    f"expression {expr.source!r}: {fn}(...) needs the register's name as "
                    f"quoted text, e.g. {fn}('customer_credit', ...)",
                )
                ok = False
            elif name not in self.readable:
                where = (
                    "add it to 'registers: {read: [...]}' of this process"
                    if name in self.registers
                    else f"unknown register; known: {', '.join(sorted(self.registers)) or 'none'}"
                )
                self.add(path, f"expression {expr.source!r} reads register {name!r}: {where}")
                ok = False
        return ok

    def check_registers(self) -> None:
        """The registers listed exist; a process writes only those naming it a writer."""
        use = self.spec.registers
        known = ", ".join(sorted(self.registers)) or "none"
        for part in ("read", "write"):
            for i, name in enumerate(getattr(use, part)):
                reg = self.registers.get(name)
                if reg is None:
                    self.add(
                        ("registers", part, i),
                        f"unknown register {name!r}; known: {known} "
                        "(register files live in registers/ beside org.yaml)",
                    )
                elif part == "write" and self.spec.process not in reg.writers:
                    writers = ", ".join(reg.writers) or "none"
                    self.add(
                        ("registers", part, i),
                        f"process {self.spec.process!r} is not a writer of register {name!r} "
                        f"(its writers: {writers}); add it to 'writers:' in the register file",
                    )
        for name in sorted(self.var_names & REGISTER_FUNCTIONS):
            self.add(("variables", name), f"variable name {name!r} is taken by a function")

    def check_writes(self, sname: str, state: StateSpec) -> None:
        """A state's register writes: a register the process writes, its fields, the
        expressions of key and values."""
        for i, wspec in enumerate(state.write):
            path: PathKey = ("states", sname, "write", i)
            key = f"{sname}.write.{i}"
            reg = self.registers.get(wspec.name)
            if wspec.name not in self.spec.registers.write:
                self.add(
                    (*path, "register"),
                    f"register {wspec.name!r} is not in 'registers: {{write: [...]}}' "
                    "of this process",
                )
            self.check_expr(f"{key}.key", wspec.key, (*path, "key"))
            if not wspec.set:
                self.add((*path, "set"), "a write needs at least one field in 'set'")
            for fname, source in wspec.set.items():
                if reg is not None and fname not in reg.fields:
                    fields = ", ".join(reg.fields)
                    self.add(
                        (*path, "set", fname),
                        f"register {reg.name!r} has no field {fname!r}; fields: {fields}",
                    )
                    continue
                self.check_expr(f"{key}.set.{fname}", source, (*path, "set", fname))

    def check_duration(self, path: PathKey, dur: Duration, key: str) -> None:
        amount = dur.amount
        if isinstance(amount, str):
            self.check_expr(f"{key}.amount", amount, (*path, dur.unit))
        elif amount < 0:
            self.add((*path, dur.unit), "a duration cannot be negative")
        elif amount > MAX_DURATION:
            self.add((*path, dur.unit), f"a duration above {MAX_DURATION} is refused")
        elif dur.unit != "hours" and int(amount) != amount:
            self.add((*path, dur.unit), f"{dur.unit} must be a whole number")

    def check_role(self, path: PathKey, role: str | None) -> None:
        if role is not None and role not in self.roles:
            self.add(path, f"unknown role {role!r}; declare it in org.yaml under 'roles:'")

    def check_roles(self, path: PathKey, names: Iterable[str]) -> None:
        for i, role in enumerate(names):
            self.check_role((*path, i), role)

    def check_target(self, path: PathKey, target: str) -> None:
        if target not in self.spec.states:
            known = ", ".join(sorted(self.spec.states))
            self.add(path, f"unknown target state {target!r}; states are: {known}")

    def check_state_names(self, path: PathKey, names: Iterable[str]) -> None:
        for i, name in enumerate(names):
            if name not in self.spec.states:
                self.add((*path, i), f"unknown state {name!r}")

    def check_variable(self, path: PathKey, name: str) -> None:
        if name not in self.var_names:
            self.add(path, f"unknown variable {name!r}")

    def check_sets(self, path: PathKey, sets: Mapping[str, str], key: str) -> None:
        for name, source in sets.items():
            self.check_variable((*path, "set", name), name)
            self.check_expr(f"{key}.set.{name}", source, (*path, "set", name))

    def check_inputs(self, path: PathKey, step: Inputs, key: str) -> None:
        for i, name in enumerate(step.require):
            self.check_variable((*path, "require", i), name)
        for i, name in enumerate(step.accept):
            self.check_variable((*path, "accept", i), name)
        for name, source in step.require_when.items():
            npath = (*path, "require_when", name)
            self.check_variable(npath, name)
            if name in step.require:
                self.add(npath, f"{name!r} is in require already: it is required always")
            self.check_expr(f"{key}.require_when.{name}", source, npath)
        self.check_sets(path, step.set, key)

    def check_value(self, path: PathKey, name: str, value: Any) -> None:
        """Whether a schedule's ``value`` fits variable ``name``."""
        var = self.spec.variables[name]
        try:
            coerce(name, var.type, value, values=var.values, minimum=var.min, maximum=var.max)
        except InvalidData as exc:
            self.add(path, exc.reason)
        if self.people and var.type is VarType.user and value not in self.org.users:
            self.add(path, f"unknown user {value!r}")

    # ------------------------------------------------------------------ sections

    def check_variables(self) -> None:
        for name, var in self.spec.variables.items():
            path: PathKey = ("variables", name)
            if not re.match(NAME, name):
                self.add(path, f"variable name {name!r} must match {NAME}")
            if var.live is not None:
                self.check_expr(f"live.{name}", var.live, (*path, "live"))
                live = self.exprs.get(f"live.{name}")
                if live is not None and live.register_calls:
                    self.add(
                        (*path, "live"),
                        "a live value cannot read a register (it is shown, not a step); "
                        "read it in a step's `set` instead",
                    )
            if var.default is not None:
                self.check_default((*path, "default"), name, var.default)

    def check_default(self, path: PathKey, name: str, default: Any) -> None:
        var = self.spec.variables[name]
        if self.people and var.type is VarType.user and default not in self.org.users:
            self.add(path, f"unknown user {default!r}")
        try:
            coerce(name, var.type, default, values=var.values, minimum=var.min, maximum=var.max)
        except InvalidData as exc:
            self.add(path, f"default: {exc.reason}")

    def check_decisions(self) -> None:
        if self.spec.decisions:
            try:
                self.decisions = load_decisions(self.doc, self.spec.decisions, ("decisions",))
            except DefinitionError as exc:
                self.problems.extend(exc.problems)
        for tname, table in self.decisions.items():
            for out in table.outputs:
                if out not in self.var_names:
                    self.add(
                        ("decisions", tname, "outputs"),
                        f"output {out!r} is not a declared variable; declare it under 'variables:'",
                    )

    def check_state(self, sname: str, state: StateSpec) -> None:
        base: PathKey = ("states", sname)
        self.check_sets(base, state.set, sname)
        self.check_writes(sname, state)
        for i, dec in enumerate(state.decide):
            self.check_decide((*base, "decide", i), f"{sname}.decide.{i}", dec)
        for i, branch in enumerate(state.route):
            self.check_target((*base, "route", i, "to"), branch.to)
            if branch.when is not None:
                allow = CHILDREN_NAMES if state.waits else frozenset()
                where = (*base, "route", i, "when")
                self.check_expr(f"{sname}.route.{i}", branch.when, where, allow)
        for i, spawn in enumerate(state.spawn):
            self.check_spawn((*base, "spawn", i), f"{sname}.spawn.{i}", spawn)
        if state.route and state.route[-1].when is not None:
            self.add(
                (*base, "route", len(state.route) - 1),
                "the last route branch needs no 'when' (the otherwise branch), "
                "or an instance could get stuck here",
            )
        if state.task:
            self.check_task(sname, state.task)

    def check_spawn(self, path: PathKey, key: str, spawn: SpawnSpec) -> None:
        """A spawn's expressions compile (``item`` visible with for_each) and its ``as``
        names a user. Whether its process is deployed, and takes this input, is known
        only when it runs (it may be deployed later): then a missing one is refused."""
        allow = SPAWN_NAMES if spawn.for_each is not None else frozenset()
        if spawn.for_each is not None:
            self.check_expr(f"{key}.for_each", spawn.for_each, (*path, "for_each"))
        if spawn.when is not None:
            self.check_expr(f"{key}.when", spawn.when, (*path, "when"), allow)
        for name, source in spawn.set.items():
            if not re.match(NAME, name):
                self.add((*path, "set", name), f"variable name {name!r} must match {NAME}")
            self.check_expr(f"{key}.set.{name}", source, (*path, "set", name), allow)
        who = spawn.requester
        if isinstance(who, SpawnAs):
            if who.user is not None and self.people and who.user not in self.org.users:
                self.add((*path, "as", "user"), f"unknown user {who.user!r}; see 'run.py users'")
            if who.variable is not None:
                var = self.spec.variables.get(who.variable)
                if var is None or var.type is not VarType.user:
                    self.add(
                        (*path, "as", "variable"),
                        f"{who.variable!r} is not a variable of type user",
                    )

    def check_decide(self, path: PathKey, key: str, dec: DecideSpec) -> None:
        table = self.decisions.get(dec.table)
        if table is None:
            if dec.table not in self.spec.decisions:
                self.add((*path, "table"), f"unknown decision table {dec.table!r}")
            return
        for inp, source in dec.inputs.items():
            if inp not in table.inputs:
                self.add((*path, "inputs", inp), f"table has no input {inp!r}")
            self.check_expr(f"{key}.{inp}", source, (*path, "inputs", inp))
        for inp in table.inputs:
            if inp not in dec.inputs and inp not in self.var_names:
                self.add(path, f"table input {inp!r} is neither given in 'inputs' nor a variable")

    def check_task(self, sname: str, task: TaskSpec) -> None:
        base: PathKey = ("states", sname, "task")
        if task.assignees:
            self.check_assignees(base, task)
        self.check_role((*base, "role"), task.role)
        self.check_roles((*base, "roles"), task.roles)
        if task.role_from is not None:
            self.check_expr(f"{sname}.role_from", task.role_from, (*base, "role_from"))
        if not task.actions:
            self.add((*base, "actions"), "a task needs at least one action")
        if task.countersign is not None and task.countersign not in task.actions:
            self.add(
                (*base, "countersign"), f"countersign {task.countersign!r} is not an action here"
            )
        if task.mode is not TaskMode.any and len(task.actions) < 1:
            self.add((*base, "actions"), "a countersigned task needs actions")
        for aname, action in task.actions.items():
            apath: PathKey = (*base, "actions", aname)
            if not re.match(NAME, aname):
                self.add(apath, f"action name {aname!r} must match {NAME}")
            self.check_target((*apath, "to"), action.to)
            if action.when is not None:
                self.check_expr(f"{sname}.{aname}.when", action.when, (*apath, "when"))
            self.check_inputs(apath, action, f"{sname}.{aname}")

    # ------------------------------------------------------------------ assignees

    def check_department(self, path: PathKey, dept: str) -> None:
        """Departments, like people, are checked for validate and deploy only: a running
        instance whose department has gone finds nobody there and falls back (if_none)."""
        if self.people and dept not in self.org.departments:
            known = ", ".join(sorted(self.org.departments)) or "none"
            self.add(path, f"unknown department {dept!r}; org.yaml has: {known}")

    def check_user(self, path: PathKey, user: str) -> None:
        if self.people and user not in self.org.users:
            self.add(path, f"unknown user {user!r}; name a user of org.yaml (see 'run.py users')")

    def check_user_var(self, path: PathKey, name: str, department: bool = False) -> None:
        """A variable naming a person (type user); with ``department`` (under ``in:``) also a
        string variable holding a department id."""
        var = self.spec.variables.get(name)
        if var is None:
            self.add(path, f"unknown variable {name!r}")
        elif department and var.type not in (VarType.user, VarType.string):
            self.add(
                path,
                f"variable {name!r} is of type {var.type.value}; it must be of type user "
                "(a person) or string (a department id)",
            )
        elif not department and var.type is not VarType.user:
            self.add(
                path, f"variable {name!r} is of type {var.type.value}; it must be of type user"
            )

    def check_ref(self, path: PathKey, ref: Ref, department: bool = False) -> None:
        if ref.var is not None:
            self.check_user_var((*path, "var"), ref.var, department)
        if ref.user is not None:
            self.check_user((*path, "user"), ref.user)
        if ref.department is not None:
            self.check_department((*path, "department"), ref.department)

    def check_assignees(self, base: PathKey, task: TaskSpec) -> None:
        """Every assignee names known roles, departments, users and user variables, and
        every fallback a known role or an action this task has."""
        for i, who in enumerate(task.assignees):
            path: PathKey = (*base, "assignees", i)
            self.check_role((*path, "role"), who.role)
            for key, ref in (("in", who.in_), ("manager", who.manager)):
                if ref is not None:
                    self.check_ref((*path, key), ref, department=key == "in")
            if isinstance(who.head, str):
                self.check_department((*path, "head"), who.head)
            elif who.head is not None:
                self.check_ref((*path, "head", "of"), who.head.of)
            if who.up_to is not None:
                self.check_role((*path, "up_to", "role"), who.up_to.role)
                if who.up_to.department is not None:
                    self.check_department((*path, "up_to", "department"), who.up_to.department)
            if who.user is not None:
                self.check_user((*path, "user"), who.user)
            if who.user_var is not None:
                self.check_user_var((*path, "user_var"), who.user_var)
        if task.auto_approve_repeat and skip_action(task, "skip") is None:
            self.add(
                (*base, "auto_approve_repeat"),
                "auto_approve_repeat needs to know the approving action: give the task "
                "'countersign' or an 'approve' action",
            )
        own = bool(task.if_none)
        where: PathKey = (*base, "if_none") if own else ("if_none",)
        for j, fallback in enumerate(task.if_none or self.spec.if_none):
            fpath: PathKey = (*where, j)
            if isinstance(fallback, Fallback) and fallback.role is not None:
                self.check_role((*fpath, "role"), fallback.role)
                continue
            if fallback == "manager_up":
                continue
            action = skip_action(task, fallback)
            if action is None:
                at = "" if own else f" (for task {base[1]!r})"
                self.add(
                    fpath,
                    f"'skip' does not say which action to take{at}: the task has no countersign "
                    "or approve action; write {skip: ACTION}",
                )
            elif action not in task.actions:
                self.add((*fpath, "skip"), f"skip action {action!r} is not an action of this task")
            elif task.actions[action].require:
                self.add(
                    (*fpath, "skip"),
                    f"skip action {action!r} requires input ("
                    f"{', '.join(task.actions[action].require)}), which nobody gives when skipped",
                )

    def check_deadline(self, path: PathKey, dl: DeadlineSpec, key: str) -> None:
        self.check_duration(path, dl, key)
        if dl.from_ is not None:
            self.check_expr(f"{key}.from", dl.from_, (*path, "from"))
        for i, esc in enumerate(dl.escalations):
            epath: PathKey = (*path, "escalations", i)
            if esc.after is not None:
                self.check_duration((*epath, "after"), esc.after, f"{key}.esc.{i}")
            self.check_roles((*epath, "notify"), esc.notify)
            self.check_reassign((*epath, "reassign"), esc)
            if esc.goto is not None:
                self.check_target((*epath, "goto"), esc.goto)
        calendar = self.calendars.get(self.spec.calendar)
        close = calendar.business_hours.end if calendar and calendar.business_hours else None
        for i, rem in enumerate(dl.reminders):
            self.check_duration((*path, "reminders", i), rem.before, f"{key}.rem.{i}")
            problem = reminder_problem(dl, rem, close)
            if problem:
                self.add((*path, "reminders", i), problem)

    def check_reassign(self, path: PathKey, esc: Escalation) -> None:
        target = esc.target
        if target is None:
            return
        if isinstance(esc.reassign, str):
            self.check_role(path, target.role)
            return
        self.check_role((*path, "role"), target.role)
        if self.people and target.user is not None and target.user not in self.org.users:
            self.add((*path, "user"), f"unknown user {target.user!r} (see 'run.py users')")

    def check_rollback(self) -> None:
        """``rollback.allowed_from`` names task states."""
        allowed = self.spec.rollback.allowed_from or ()
        for i, name in enumerate(allowed):
            state = self.spec.states.get(name)
            if state is None:
                self.add(("rollback", "allowed_from", i), f"unknown state {name!r}")
            elif state.task is None:
                self.add(
                    ("rollback", "allowed_from", i),
                    f"state {name!r} has no task; only a task can be sent back",
                )

    def check_state_deadlines(self, sname: str, state: StateSpec) -> None:
        """A state's own deadline, and the instance deadline its actions extend."""
        if state.deadline is not None:
            self.check_deadline(("states", sname, "deadline"), state.deadline, f"{sname}.deadline")
        if not state.task:
            return
        for aname, action in state.task.actions.items():
            if action.extend is None:
                continue
            apath: PathKey = ("states", sname, "task", "actions", aname, "extend")
            if self.spec.deadline is None:
                self.add(apath, "'extend' needs an instance deadline ('deadline:' at the top)")
            self.check_duration((*apath, "by"), action.extend.by, f"{sname}.{aname}.extend")

    def check_if_none(self) -> None:
        """The process-wide fallbacks' roles (their skip actions are checked per task)."""
        for j, fallback in enumerate(self.spec.if_none):
            if isinstance(fallback, Fallback):
                self.check_role(("if_none", j, "role"), fallback.role)

    def check_schedule(self, spath: PathKey, sched: ScheduleSpec) -> None:
        spec, org = self.spec, self.org
        if self.people and sched.requester not in org.users:
            self.add(
                (*spath, "as"),
                f"unknown user {sched.requester!r}; name a user of org.yaml (see 'run.py users')",
            )
        if sched.cron is not None:
            problem = cron_problem(sched.cron)
            if problem:
                self.add((*spath, "cron"), problem)
        if sched.anchor is not None:
            try:
                if datetime.fromisoformat(sched.anchor).tzinfo is None:
                    self.add((*spath, "anchor"), "anchor needs a UTC offset, e.g. +08:00")
            except ValueError:
                self.add((*spath, "anchor"), f"anchor {sched.anchor!r} is not ISO 8601")
        if sched.every is not None:
            amount = sched.every.amount
            if isinstance(amount, str) or amount <= 0:
                self.add((*spath, "every"), "'every' needs a number greater than 0")
        user = org.users.get(sched.requester) if self.people else None
        if user is not None and spec.start.roles and not set(user.roles) & set(spec.start.roles):
            self.add(
                (*spath, "as"),
                f"user {sched.requester!r} may not start this process "
                f"(start.roles: {', '.join(spec.start.roles)})",
            )
        startable = set(spec.start.require) | set(spec.start.accept)
        for name, value in sched.set.items():
            vpath: PathKey = (*spath, "set", name)
            if name not in self.var_names:
                self.add(vpath, f"unknown variable {name!r}")
                continue
            if name not in startable:
                self.add(vpath, f"{name!r} is not in start.require or start.accept")
            self.check_value(vpath, name, value)
        missing = [n for n in spec.start.require if n not in sched.set]
        if missing and not _has_defaults(spec, missing):
            self.add((*spath, "set"), f"the schedule must set {', '.join(missing)} (start.require)")

    def check_graph(self) -> None:
        """Every state reachable from the start, and every non-final state able to finish."""
        spec = self.spec
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
                self.add(("states", name), f"state {name!r} is unreachable from the start")
        finals = {n for n, st in states.items() if st.final}
        if not finals:
            self.add(("states",), "the process has no final state ('final: true')")
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
                self.add(
                    ("states", name),
                    f"state {name!r} is a dead end: no final state can be reached from it",
                )


def compile_process(
    doc: Document,
    org: Org,
    calendars: Mapping[str, WorkingCalendar] | None = None,
    *,
    people: bool = True,
    registers: Mapping[str, RegisterSpec] | None = None,
) -> CompiledProcess:
    """Validate a process document against the org and calendars, and compile it.

    Roles are structure and always checked. The people a process names (a schedule's
    ``as:``, user-typed defaults and schedule values) are checked only with ``people``:
    on for ``validate`` and ``deploy``, off when a stored version is recompiled, because
    its running instances must keep working whoever has come or gone since. Whether a
    person is active is never a definition question: a schedule resolves its user when
    the slot fires (see ``service.timekeeper``).
    """
    spec = parse_model(ProcessSpec, doc)
    calendars = dict(calendars or {})
    calendars.setdefault("cn", default_calendar())
    registers = dict(registers or {})
    ck = _Checker(doc, spec, org, calendars, people, registers)
    ck.run()
    if ck.problems:
        raise DefinitionError(ck.problems)
    process = CompiledProcess(
        spec=with_resubmit(spec),
        source_hash=source_hash(_source_text(doc)),
        source_text=_source_text(doc),
        file=doc.file,
        known_roles=ck.roles,
        known_users=frozenset(org.users),
        org=org,
        calendar=calendars.get(spec.calendar, default_calendar()),
        expressions=ck.exprs,
        decisions=ck.decisions,
        registers={n: registers[n] for n in sorted(ck.readable) if n in registers},
    )
    return attach_machine(process)


def with_resubmit(spec: ProcessSpec) -> ProcessSpec:
    """``spec`` with the state a request sent back to its requester waits in (退回到发起人).

    Its task goes to the requester alone (``engine.steps`` gives it the slot
    ``user:<requester>``): ``resubmit`` takes the start inputs again and goes on as
    ``rollback.resubmit`` says (``engine.rollback``); ``withdraw`` ends the request. Built
    without validation because its assignee is decided per instance, not by a role.
    """
    if RESUBMIT in spec.states:
        return spec
    accept = tuple(
        dict.fromkeys((*spec.start.require, *spec.start.accept, *spec.start.require_when))
    )
    task = TaskSpec.model_construct(
        title="Revise and resubmit",
        description="Sent back to the requester: change the request and resubmit it, "
        "or withdraw it.",
        role=None,
        role_from=None,
        roles=(),
        mode=TaskMode.any,
        countersign=None,
        four_eyes=False,
        actions={
            "resubmit": ActionSpec.model_construct(
                title="Resubmit", to=spec.start.to, accept=accept, require=(), set={},
                require_when=dict(spec.start.require_when),
                when=None, when_message=None, comment=CommentRule.optional, extend=None,
            ),
            "withdraw": ActionSpec.model_construct(
                title="Withdraw", to=spec.start.to, accept=(), require=(), set={},
                require_when={},
                when=None, when_message=None, comment=CommentRule.optional, extend=None,
            ),
        },
    )  # fmt: skip
    state = StateSpec.model_construct(
        title="Sent back to the requester", description="", set={}, decide=(), task=task,
        route=(), deadline=None, final=False, outcome=None, cc=(), write=(),
    )  # fmt: skip
    return spec.model_copy(update={"states": {**spec.states, RESUBMIT: state}})


def attach_machine(process: CompiledProcess) -> CompiledProcess:
    """Give a process its transitions machine and the one cursor attached to it; also
    for a process loaded from a cache (service/defcache.py), as neither pickles."""
    process.machine = _build_machine(process)
    return process


def skip_action(task: TaskSpec, fallback: IfNone) -> str | None:
    """The action an ``if_none`` skip takes: the one it names, else the task's agreeing
    action (countersign, or approve), else its only action."""
    if isinstance(fallback, Fallback) and fallback.skip is not None:
        return fallback.skip
    if task.agree is not None:
        return task.agree
    return next(iter(task.actions)) if len(task.actions) == 1 else None


def _has_defaults(spec: ProcessSpec, names: Iterable[str]) -> bool:
    return all(spec.variables[n].default is not None for n in names if n in spec.variables)


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


def reminder_problem(dl: DeadlineSpec, rem: Reminder, close: time | None) -> str | None:
    """Why ``rem`` can never come before ``dl``, where constant amounts show it at load.

    Only reminders counted on the calendar (``working_days`` or ``at``) can; the rest are
    elapsed time before the due instant. ``close`` is the calendar's close of business
    (None: 24:00). What depends on expressions is checked when the timer is planned (the
    reminder is then not set, with an audit entry ``reminder_not_set``).
    """
    n, m = rem.before.amount, dl.amount
    if not rem.on_a_day or isinstance(n, str):
        return None
    if (
        dl.from_ is None
        and dl.unit == "working_days"
        and rem.before.unit == "working_days"
        and not isinstance(m, str)
        and n > m
    ):
        return (
            f"a reminder {n} working days before a deadline of {m} working days falls before "
            "the period starts, so it would never be sent; remind fewer working days before"
        )
    if n != 0 or dl.unit == "hours" or (dl.at is None and (isinstance(m, str) or m == 0)):
        return None  # the deadline's day or time of day is not known before it runs
    # the deadline's last day is a working day, so 0 days before it is that same day
    due_clock = dl.at or close  # None: 24:00
    if rem.at is not None and (due_clock is None or rem.at < due_clock):
        return None
    when = (rem.at or due_clock).strftime("%H:%M") if (rem.at or due_clock) else "24:00"
    due = due_clock.strftime("%H:%M") if due_clock is not None else "24:00"
    return (
        f"this reminder would come at {when} on the deadline's own day, not before the "
        f"deadline at {due}; give an earlier 'at' or remind a day before"
    )
