"""The pure core: ``fire(process, snapshot, event, actor, data, now) -> Outcome``.

No database, no clock, no org lookups beyond the ``Actor`` handed in: the same inputs
always give the same outcome, so every rule can be tested without storage, and storage
can apply the result in one transaction or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from engine.calendar import WorkingCalendar
from engine.decisions import evaluate as evaluate_table
from engine.errors import (
    ActionNotAllowed,
    ExpressionError,
    InvalidData,
    NotFound,
    WorkflowError,
)
from engine.model import DeadlineSpec, Duration, Inputs, TaskMode
from engine.org import Actor
from engine.process import (
    CALENDAR_FUNCTIONS,
    GOTO_PREFIX,
    MAX_DURATION,
    NEW,
    ROUTE_TRIGGER,
    SLA,
    START_TRIGGER,
    CompiledProcess,
)
from engine.records import (
    AuditRecord,
    Notice,
    Outcome,
    Signoff,
    Snapshot,
    TaskRecord,
    TimerRecord,
)
from engine.sla import Extension, SlaClock
from engine.values import VarType, coerce, decode, encode

MAX_HOPS = 50
SYSTEM = "system"


@dataclass(frozen=True)
class Start:
    """Start a new instance with this id (the service picks ids; the engine stays pure).

    ``on_behalf_of``: the absent user the actor stands in for (a schedule's ``as:`` user
    who is away); that user stays the requester, and the audit names both.
    """

    instance_id: str
    version: int = 1
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class Act:
    """A person takes ``action`` on an open task."""

    task_id: str
    action: str
    comment: str | None = None


@dataclass(frozen=True)
class TimerFired:
    """A due timer (deadline, reminder or escalation level) is being fired by ``tick``."""

    timer: TimerRecord


Event = Start | Act | TimerFired


def decode_variables(process: CompiledProcess, stored: Mapping[str, Any]) -> dict[str, Any]:
    """Stored JSON -> typed Python values, every declared variable present (None if unset)."""
    return {
        name: decode(spec.type, stored.get(name)) for name, spec in process.spec.variables.items()
    }


def encode_variables(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: encode(v) for k, v in values.items() if v is not None}


def live_values(
    process: CompiledProcess, values: Mapping[str, Any], now: datetime, requester: str
) -> dict[str, Any]:
    """``live`` variables as of ``now`` (shown, never stored by themselves)."""
    ctx = context(values, now, "system", requester, calendar=process.calendar)
    out: dict[str, Any] = {}
    for name, spec in process.spec.variables.items():
        if spec.live is not None:
            out[name] = process.expr(f"live.{name}").evaluate(ctx)
            ctx[name] = out[name]
    return out


def context(
    values: Mapping[str, Any],
    now: datetime,
    actor: str,
    requester: str,
    tz: tzinfo | None = None,
    calendar: WorkingCalendar | None = None,
) -> dict[str, Any]:
    """What an expression sees: the variables plus a few well-known names.

    ``now`` and ``today`` are in the process calendar's zone: at 07:00 in Shanghai it is
    already "today" there, though still yesterday in UTC. With the process ``calendar``,
    the functions that need it (``CALENDAR_FUNCTIONS``) are there too.
    """
    if tz is None and calendar is not None:
        tz = calendar.tz
    local = now.astimezone(tz) if tz is not None else now
    ctx = dict(values)
    ctx.update(now=local, today=local.date(), actor=actor, requester=requester)
    if calendar is not None:
        ctx.update(calendar_functions(calendar))
    return ctx


def calendar_functions(calendar: WorkingCalendar) -> dict[str, Any]:
    """Expression functions bound to the process calendar (see ``CALENDAR_FUNCTIONS``).

    A date computed in an expression (a payment term's last day, say) must move off a
    holiday exactly as the deadline counted by the same calendar does (Civil Code art. 203),
    or a fee and a deadline computed from "the same" term disagree.
    """

    def next_working_day(day: Any) -> date:
        """``day`` itself if it is a working day, else the first working day after it."""
        if day is None:
            raise TypeError("next_working_day needs a date, got none")
        if isinstance(day, datetime):
            day = day.astimezone(calendar.tz).date()
        elif not isinstance(day, date):
            day = date.fromisoformat(str(day))
        return calendar.next_working_day(day)

    functions = {"next_working_day": next_working_day}
    assert functions.keys() == CALENDAR_FUNCTIONS
    return functions


class _Step:
    """Mutable working state of one firing; turned into a frozen Outcome at the end."""

    def __init__(
        self,
        process: CompiledProcess,
        snapshot: Snapshot,
        values: dict[str, Any],
        now: datetime,
        actor: str,
    ) -> None:
        self.process = process
        self.base = snapshot
        self.values = values
        self.now = now
        self.actor = actor
        self.state = snapshot.state
        self.status = snapshot.status
        self.outcome_name = snapshot.outcome
        self.task_seq = snapshot.task_seq
        self.approvers = list(snapshot.approvers)
        self.open_tasks = {t.id: t for t in snapshot.tasks}
        self.opened: list[TaskRecord] = []
        self.changed: list[TaskRecord] = []
        self.audit: list[AuditRecord] = []
        self.notices: list[Notice] = []
        self.cancel_states: list[str] = []
        self.timers: list[TimerRecord] = []
        # frozen: a step replaces the clock, never changes the snapshot's
        self.sla: SlaClock | None = snapshot.sla
        self.base_sla = self.sla

    def ctx(self) -> dict[str, Any]:
        return context(
            self.values, self.now, self.actor, self.base.requester, calendar=self.process.calendar
        )

    def assign(self, name: str, value: Any, source: str) -> None:
        spec = self.process.spec.variables[name]
        try:
            self.values[name] = coerce(
                name, spec.type, value, values=spec.values, minimum=spec.min, maximum=spec.max
            )
        except InvalidData as exc:
            hint = " (round money with round_fen(...))" if "fen" in exc.reason else ""
            raise ExpressionError(source, f"result for {name}: {exc.reason}{hint}") from None

    def compute(self, sets: Mapping[str, str], key: str) -> None:
        for name in sets:
            expr = self.process.expr(f"{key}.set.{name}")
            self.assign(name, expr.evaluate(self.ctx()), expr.source)

    def take_inputs(self, step: Inputs, data: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Coerce and check what the person supplied; returns the accepted inputs."""
        variables = self.process.spec.variables
        allowed = set(step.require) | set(step.accept)
        given: dict[str, Any] = {}
        for name, raw in data.items():
            if name not in variables:
                known = ", ".join(sorted(variables)) or "none"
                raise InvalidData(name, f"unknown variable; this process has: {known}")
            if name not in allowed:
                ok = ", ".join(sorted(allowed)) or "nothing"
                raise InvalidData(name, f"cannot be set by {where}; it accepts: {ok}")
            spec = variables[name]
            given[name] = coerce(
                name, spec.type, raw, values=spec.values, minimum=spec.min, maximum=spec.max
            )
            if spec.type is VarType.user and given[name] not in self.process.known_users:
                raise InvalidData(name, f"unknown user {given[name]!r}; see 'run.py users'")
        self.values.update(given)
        for name in step.require:
            if self.values.get(name) is None:
                raise InvalidData(name, f"required by {where}: give it with --set {name}=VALUE")
        return given

    def trigger(self, source: str, trigger: str) -> str | None:
        """Fire ``trigger`` from ``source`` on the process's machine; None if no guard held."""
        machine = self.process.machine
        cursor = self.process.cursor
        assert machine is not None
        context = self.ctx()
        with self.process.lock:
            machine.set_state(source, model=cursor)
            moved = machine.events[trigger].trigger(cursor, context=context)
            return cursor.state if moved else None

    def enter(self, target: str, record: dict[str, Any]) -> None:
        """Enter ``target`` and follow automatic routes; ``record`` is the audit entry to fill."""
        records = [record]
        self._follow(target, records)
        self.audit.extend(self.finish(r) for r in records)

    def _follow(self, target: str, records: list[dict[str, Any]]) -> None:
        spec = self.process.spec
        record = records[-1]
        for _ in range(MAX_HOPS):
            state = spec.states[target]
            self.state = target
            record["to_state"] = target
            self.sla_on_enter(target, record)
            entry: dict[str, Any] = {}
            for i, dec in enumerate(state.decide):
                table = self.process.decisions[dec.table]
                inputs = {}
                for name in table.inputs:
                    if name in dec.inputs:
                        inputs[name] = self.process.expr(f"{target}.decide.{i}.{name}").evaluate(
                            self.ctx()
                        )
                    else:
                        inputs[name] = self.values.get(name)
                result = evaluate_table(table, inputs)
                for out, value in result.outputs.items():
                    self.assign(out, value, f"decision {dec.table}")
                entry.setdefault("decisions", []).append(
                    {
                        "table": dec.table,
                        "rule": result.rule + 1,
                        "inputs": encode(result.inputs),
                        "outputs": encode(result.outputs),
                    }
                )
            if state.set:
                self.compute(state.set, target)
                entry["computed"] = {k: encode(self.values.get(k)) for k in state.set}
            if entry:
                record.setdefault("data", {}).update(entry)
            if state.final:
                self.status = "completed"
                self.outcome_name = state.outcome or target
                record.setdefault("data", {})["outcome"] = self.outcome_name
                self.notices.append(
                    Notice(
                        "completed",
                        (f"user:{self.base.requester}",),
                        self.base.id,
                        data={"outcome": self.outcome_name, "state": target},
                    )
                )
                return
            if state.task is not None:
                task = self.open_task(target)
                record.setdefault("data", {})["opened_task"] = task.id
                return
            nxt = self.trigger(target, ROUTE_TRIGGER)
            if nxt is None:  # pragma: no cover - validation demands an otherwise branch
                raise ExpressionError(target, "no route branch matched")
            record = {"actor": SYSTEM, "action": "route", "from_state": target}
            records.append(record)
            target = nxt
        raise ExpressionError(target, f"more than {MAX_HOPS} automatic steps: a routing loop?")

    def open_task(self, sname: str) -> TaskRecord:
        tspec = self.process.spec.states[sname].task
        assert tspec is not None
        if tspec.role is not None:
            roles: tuple[str, ...] = (tspec.role,)
        elif tspec.role_from is not None:
            expr = self.process.expr(f"{sname}.role_from")
            role = expr.evaluate(self.ctx())
            if not isinstance(role, str) or role not in self.process.known_roles:
                raise ExpressionError(expr.source, f"gave {role!r}, which is not a known role")
            roles = (role,)
        else:
            roles = tspec.roles
        self.task_seq += 1
        task_id = f"{self.base.id}-{self.task_seq}"
        state_spec = self.process.spec.states[sname]
        due_at = None
        if state_spec.deadline is not None:
            due_at = self.plan(
                state_spec.deadline, self.now, sname, task_id, f"{sname}.deadline", task_id
            )
        elif self.sla_due() is not None:
            due_at = self.sla_due()
        task = TaskRecord(
            id=task_id,
            instance_id=self.base.id,
            process=self.process.name,
            name=sname,
            state=sname,
            roles=roles,
            mode=tspec.mode.value,
            actions=tuple(tspec.actions),
            status="open",
            created_at=self.now,
            due_at=due_at,
        )
        self.opened.append(task)
        self.open_tasks[task.id] = task
        self.notices.append(
            Notice(
                "task_assigned",
                tuple(f"role:{r}" for r in task.pending_roles),
                self.base.id,
                task.id,
                {"state": sname, "title": tspec.title or self.process.spec.states[sname].title}
                | ({"due_at": due_at.isoformat()} if due_at is not None else {}),
            )
        )
        return task

    # ---------------------------------------------------------------- time

    def amount(self, dur: Duration, key: str) -> int | Decimal:
        raw = dur.amount
        if isinstance(raw, str):
            expr = self.process.expr(f"{key}.amount")
            raw = expr.evaluate(self.ctx())
            if (
                isinstance(raw, bool)
                or not isinstance(raw, int | Decimal)
                or not 0 <= raw <= MAX_DURATION
            ):
                raise ExpressionError(
                    expr.source,
                    f"a duration must be a number from 0 to {MAX_DURATION}, got {raw!r}",
                )
        if dur.unit != "hours" and raw != int(raw):
            raise ExpressionError(str(dur.amount), f"{dur.unit} must be whole, got {raw}")
        return raw

    def later(self, start: datetime, dur: Duration, key: str) -> datetime:
        return self.process.calendar.add(start, self.amount(dur, key), dur.unit)  # type: ignore[arg-type]

    def plan(
        self,
        dl: DeadlineSpec,
        start: datetime,
        state: str,
        prefix: str,
        key: str,
        task_id: str | None,
        due: datetime | None = None,
    ) -> datetime:
        """Set the deadline, reminder and escalation timers of ``dl``; return the due time."""
        if due is None and dl.from_ is not None:
            start = self.moment(self.process.expr(f"{key}.from"))
        due = due or self.later(start, dl, key)
        base = {"title": dl.title, "state": state, "due_at": due.isoformat()}
        self.timers.append(
            TimerRecord(f"{prefix}:due", self.base.id, "deadline", due, state, task_id, base)
        )
        for i, rem in enumerate(dl.reminders):
            amount = self.amount(rem.before, f"{key}.rem.{i}")
            delta = (
                timedelta(hours=float(amount))
                if rem.before.unit == "hours"
                else timedelta(days=int(amount))
            )
            at = due - delta
            if at > self.now:
                self.timers.append(
                    TimerRecord(
                        f"{prefix}:remind:{i}", self.base.id, "reminder", at, state, task_id, base
                    )
                )
        for i, esc in enumerate(dl.escalations):
            at = due if esc.after is None else self.later(due, esc.after, f"{key}.esc.{i}")
            self.timers.append(
                TimerRecord(
                    f"{prefix}:escalate:{i + 1}",
                    self.base.id,
                    "escalation",
                    at,
                    state,
                    task_id,
                    base | {"level": i + 1},
                )
            )
        return due

    def moment(self, expr: Any) -> datetime:
        """A deadline's starting event: a datetime, or a date (taken at noon, local time)."""
        value = expr.evaluate(self.ctx())
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime.combine(value, time(12), tzinfo=self.process.calendar.tz)
        raise ExpressionError(expr.source, f"'from' must give a date or time, got {value!r}")

    def sla_due(self) -> datetime | None:
        return self.sla.due_at if self.sla is not None and self.sla.running else None

    def sla_start(self, record: dict[str, Any]) -> None:
        dl = self.process.spec.deadline
        if dl is None:
            return
        begin = self.moment(self.process.expr("sla.from")) if dl.from_ is not None else self.now
        amount = self.amount(dl, "sla")
        due = self.process.calendar.add(begin, amount, dl.unit)  # type: ignore[arg-type]
        self.plan(dl, begin, SLA, f"{self.base.id}:sla0", "sla", None, due)
        self.sla = SlaClock(
            started_at=self.now,
            counted_from=begin,
            amount=Decimal(amount),
            unit=dl.unit,
            due_at=due,
        )
        record.setdefault("data", {})["due_at"] = due.isoformat()

    def sla_replan(self, sla: SlaClock, due: datetime, only_future: bool = False) -> None:
        """Set ``sla`` moved to ``due``: new timers, and the tasks that follow it."""
        dl = self.process.spec.deadline
        assert dl is not None
        self.sla = sla = sla.replanned(due)
        self.cancel_states.append(SLA)
        first = len(self.timers)
        self.plan(dl, self.now, SLA, f"{self.base.id}:sla{sla.generation}", "sla", None, due)
        if only_future:
            self.timers[first:] = [t for t in self.timers[first:] if t.due_at > self.now]
        for tid, task in list(self.open_tasks.items()):
            state_dl = self.process.spec.states[task.state].deadline
            if task.status == "open" and state_dl is None and task.due_at != due:
                updated = replace(task, due_at=due)
                self.open_tasks[tid] = updated
                self._changed(updated)

    def sla_on_enter(self, target: str, record: dict[str, Any]) -> None:
        dl = self.process.spec.deadline
        sla = self.sla
        if dl is None or sla is None or sla.stopped_at is not None:
            return
        state = self.process.spec.states[target]
        if target in dl.until or state.final:
            self.sla = sla.stop(self.now)
            self.cancel_states.append(SLA)
            record.setdefault("data", {})["deadline_met"] = self.sla.met
        elif target in dl.paused_in and sla.paused_at is None:
            self.sla = sla.pause(self.now)
            self.cancel_states.append(SLA)
        elif target not in dl.paused_in and sla.paused_at is not None:
            # the clock stood still while paused: the deadline moves by the pause's length;
            # timers already behind us (an overdue notice fired before the pause) stay fired
            due = sla.resumed_due(self.now)
            self.sla_replan(sla.resume(self.now), due, only_future=True)

    def extend(self, spec: Any, record: dict[str, Any], task: TaskRecord, action: str) -> None:
        """An approved extension moves the instance deadline, within its caps."""
        sla = self.sla
        if sla is None or sla.stopped_at is not None:
            raise ActionNotAllowed(task.id, action, "there is no running deadline to extend")
        done = sla.extensions
        if len(done) >= spec.max_times:
            raise ActionNotAllowed(
                task.id,
                action,
                f"the deadline was already extended {len(done)} time(s); at most "
                f"{spec.max_times} allowed",
            )
        amount = Decimal(self.amount(spec.by, f"{task.state}.{action}.extend"))
        total = sum(e.amount for e in done) + amount
        if spec.max_total is not None and total > Decimal(spec.max_total):
            raise ActionNotAllowed(
                task.id,
                action,
                f"extensions may add at most {spec.max_total} {spec.by.unit} in total; "
                f"this would make {total}",
            )
        if sla.paused_at is not None:
            raise ActionNotAllowed(
                task.id, action, "the deadline is paused; extend it after resuming"
            )
        old = sla.due_at
        new = sla.extended_due(self.process.calendar, amount, spec.by.unit)
        self.sla_replan(sla.extended(Extension(amount, spec.by.unit, self.now, self.actor)), new)
        record.setdefault("data", {})["extended"] = {
            "from": old.isoformat(),
            "to": new.isoformat(),
            "amount": str(amount),
            "unit": spec.by.unit,
        }

    def _changed(self, task: TaskRecord) -> None:
        self.changed = [t for t in self.changed if t.id != task.id] + [task]

    def finish(self, record: dict[str, Any]) -> AuditRecord:
        return AuditRecord(
            at=self.now,
            actor=record["actor"],
            action=record["action"],
            process=self.process.name,
            instance_id=self.base.id,
            from_state=record.get("from_state"),
            to_state=record.get("to_state"),
            on_behalf_of=record.get("on_behalf_of"),
            task_id=record.get("task_id"),
            data=record.get("data", {}),
        )

    def meta(self) -> dict[str, Any]:
        """The snapshot's meta, copied only if this step changed the clock."""
        if self.sla is self.base_sla or self.sla is None:
            return self.base.meta
        return {**self.base.meta, "sla": self.sla.to_json()}

    def outcome(self, expected: int | None) -> Outcome:
        snapshot = replace(
            self.base,
            state=self.state,
            status=self.status,
            outcome=self.outcome_name,
            variables=encode_variables(self.values),
            updated_at=self.now,
            tasks=tuple(t for t in self.open_tasks.values() if t.status == "open"),
            task_seq=self.task_seq,
            approvers=tuple(self.approvers),
            meta=self.meta(),
        )
        return Outcome(
            snapshot=snapshot,
            expected_row_version=expected,
            opened=tuple(self.opened),
            changed=tuple(self.changed),
            audit=tuple(self.audit),
            timers_set=tuple(self.timers),
            timers_cancel_states=tuple(dict.fromkeys(self.cancel_states)),
            notices=tuple(
                replace(n, data={"process": self.process.name} | n.data) for n in self.notices
            ),
        )


def fire(
    process: CompiledProcess,
    snapshot: Snapshot | None,
    event: Event,
    actor: Actor,
    data: Mapping[str, Any],
    now: datetime,
) -> Outcome:
    """Apply one event to one instance and say what changes; raise if it is refused."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if isinstance(event, Start):
        if snapshot is not None:
            raise WorkflowError(f"instance {event.instance_id} already exists")
        return _start(process, event, actor, data, now)
    if snapshot is None:
        raise NotFound("instance", None)
    if isinstance(event, TimerFired):
        return _timer(process, snapshot, event.timer, now)
    return _act(process, snapshot, event, actor, data, now)


def _start(
    process: CompiledProcess,
    event: Start,
    actor: Actor,
    data: Mapping[str, Any],
    now: datetime,
) -> Outcome:
    spec = process.spec
    requester, roles = actor.user, actor.roles
    if event.on_behalf_of is not None:
        absent = dict(actor.stands_in_for).get(event.on_behalf_of)
        if absent is None:
            raise WorkflowError(
                f"{actor.user} does not stand in for {event.on_behalf_of} "
                "(only the delegate of an inactive user does)"
            )
        requester, roles = event.on_behalf_of, absent
    if spec.start.roles and not (roles & set(spec.start.roles)):
        raise WorkflowError(
            f"{requester} may not start {spec.process}: it needs role "
            f"{' or '.join(spec.start.roles)}"
        )
    base = Snapshot(
        id=event.instance_id,
        process=spec.process,
        version=event.version,
        state=NEW,
        status="active",
        variables={},
        requester=requester,
        created_at=now,
        updated_at=now,
    )
    values: dict[str, Any] = {}
    for name, var in spec.variables.items():
        values[name] = (
            coerce(name, var.type, var.default, values=var.values)
            if var.default is not None
            else None
        )
    step = _Step(process, base, values, now, actor.user)
    given = step.take_inputs(spec.start, data, "start")
    step.compute(spec.start.set, "start")
    target = step.trigger(NEW, START_TRIGGER)
    assert target is not None
    record: dict[str, Any] = {
        "actor": actor.user,
        "action": "start",
        "from_state": None,
        "on_behalf_of": event.on_behalf_of,
        "data": {"input": encode(given)},
    }
    step.sla_start(record)
    step.enter(target, record)
    return step.outcome(None)


def authorize(
    process: CompiledProcess, snapshot: Snapshot, task: TaskRecord, action: str, actor: Actor
) -> tuple[str, str | None]:
    """Pick the (role, on_behalf_of) under which ``actor`` takes ``action``, or refuse."""
    tspec = process.spec.states[task.state].task
    assert tspec is not None
    pending = task.pending_roles
    options = [(role, who) for role in pending for who in actor.identities(role)]
    if not options:
        raise ActionNotAllowed(
            task.id,
            action,
            f"needs role {' or '.join(pending)}, which {actor.user} does not hold "
            "(nor stands in for someone who does)",
        )
    four_eyes = tspec.four_eyes if tspec.four_eyes is not None else process.spec.four_eyes
    if four_eyes:
        persons = lambda who: {actor.user, who} - {None}  # noqa: E731
        if any(snapshot.requester in persons(w) for _, w in options):
            options = [(r, w) for r, w in options if snapshot.requester not in persons(w)]
            if not options:
                raise ActionNotAllowed(
                    task.id,
                    action,
                    f"four-eyes rule: {snapshot.requester} requested this and may not approve "
                    "it; another holder of the role must act",
                )
        if four_eyes is True:
            options = [(r, w) for r, w in options if not (persons(w) & set(snapshot.approvers))]
            if not options:
                raise ActionNotAllowed(
                    task.id,
                    action,
                    f"four-eyes rule: {actor.user} already acted earlier in this instance; "
                    "someone else must act",
                )
    if task.mode != TaskMode.any.value:
        signed = {s.user for s in task.signoffs} | {
            s.on_behalf_of for s in task.signoffs if s.on_behalf_of
        }
        options = [(r, w) for r, w in options if actor.user not in signed and w not in signed]
        if not options:
            raise ActionNotAllowed(
                task.id, action, f"{actor.user} has already signed this task; another person must"
            )
    return options[0]


def _act(
    process: CompiledProcess,
    snapshot: Snapshot,
    event: Act,
    actor: Actor,
    data: Mapping[str, Any],
    now: datetime,
) -> Outcome:
    task = next((t for t in snapshot.tasks if t.id == event.task_id), None)
    if task is None:
        raise NotFound("task", event.task_id, "list open tasks with 'tasks'")
    if snapshot.status != "active":
        raise ActionNotAllowed(task.id, event.action, f"the instance is {snapshot.status}")
    tspec = process.spec.states[task.state].task
    assert tspec is not None
    if event.action not in tspec.actions:
        raise ActionNotAllowed(
            task.id,
            event.action,
            f"not an action of this task; choose one of: {', '.join(tspec.actions)}",
        )
    aspec = tspec.actions[event.action]
    role, on_behalf_of = authorize(process, snapshot, task, event.action, actor)
    comment = (event.comment or "").strip() or None
    if aspec.comment.value == "required" and not comment:
        raise ActionNotAllowed(task.id, event.action, "a comment is required: add --comment TEXT")

    step = _Step(process, snapshot, decode_variables(process, snapshot.variables), now, actor.user)
    given = step.take_inputs(aspec, data, f"action {event.action!r}")
    # the guard sees this step's inputs and its own `set` (a guard checks what the step
    # computes, e.g. an approved amount defaulted from the request)
    step.compute(aspec.set, f"{task.state}.{event.action}")
    computed = {k: encode(step.values.get(k)) for k in aspec.set}
    signoff = Signoff(actor.user, role, event.action, now, on_behalf_of, comment)
    record: dict[str, Any] = {
        "actor": actor.user,
        "action": event.action,
        "from_state": task.state,
        "on_behalf_of": on_behalf_of,
        "task_id": task.id,
        "data": {"role": role, "input": encode(given)}
        | ({"computed": computed} if computed else {})
        | ({"comment": comment} if comment else {}),
    }
    step.approvers.append(actor.user)
    if on_behalf_of:
        step.approvers.append(on_behalf_of)
    signed = replace(task, signoffs=(*task.signoffs, signoff))
    if (
        tspec.mode is not TaskMode.any
        and event.action == tspec.countersign
        and signed.pending_roles
    ):
        # 会签 / 依次: not everyone has signed yet, the task stays open; every signature
        # must meet the guard, not only the last one
        if aspec.when is not None:
            guard = process.expr(f"{task.state}.{event.action}.when")
            if not guard.test(step.ctx()):
                reason = aspec.when_message or f"condition not met: {aspec.when}"
                raise ActionNotAllowed(task.id, event.action, reason)
        step.open_tasks[task.id] = signed
        step._changed(signed)
        record["to_state"] = task.state
        record["data"]["waiting_for"] = list(signed.pending_roles)
        step.audit.append(step.finish(record))
        return step.outcome(snapshot.row_version)
    target = step.trigger(task.state, event.action)
    if target is None:
        reason = aspec.when_message or f"condition not met: {aspec.when}"
        raise ActionNotAllowed(task.id, event.action, reason)
    if aspec.extend is not None:
        step.extend(aspec.extend, record, task, event.action)
    closed = replace(
        signed,
        status="done",
        decision=event.action,
        decided_by=actor.user,
        closed_at=now,
    )
    step.open_tasks[task.id] = closed
    step._changed(closed)
    step.cancel_states.append(task.state)
    step.enter(target, record)
    # whoever is told about this step (next task, completion) learns who did it and why
    told = {"by": actor.user, "action": event.action} | ({"comment": comment} if comment else {})
    step.notices = [replace(n, data=n.data | told) for n in step.notices]
    return step.outcome(snapshot.row_version)


def _timer(
    process: CompiledProcess, snapshot: Snapshot, timer: TimerRecord, now: datetime
) -> Outcome:
    """Fire one timer: remind, mark overdue, or escalate (notify, reassign, move)."""
    step = _Step(process, snapshot, decode_variables(process, snapshot.variables), now, SYSTEM)
    record: dict[str, Any] = {
        "actor": SYSTEM,
        "action": timer.kind,
        "from_state": snapshot.state,
        "to_state": snapshot.state,
        "task_id": timer.task_id,
        "data": {
            "timer": timer.id,
            "planned_at": timer.due_at.astimezone(process.calendar.tz).isoformat(),
            "fired_at": now.astimezone(process.calendar.tz).isoformat(),
            "late_by_s": max(0, int((now - timer.due_at).total_seconds())),
        }
        | ({"level": timer.data["level"]} if "level" in timer.data else {}),
    }
    open_task = next(iter(snapshot.tasks), None)
    stale = snapshot.status != "active" or (
        timer.state != SLA
        and (timer.state != snapshot.state or open_task is None or open_task.id != timer.task_id)
    )
    if timer.state == SLA:
        stale = stale or (step.sla is not None and not step.sla.running)
    if stale:
        record["action"] = f"{timer.kind}_skipped"
        step.audit.append(step.finish(record))
        return step.outcome(snapshot.row_version)
    roles = open_task.pending_roles if open_task else ()
    recipients = tuple(f"role:{r}" for r in roles)
    task_id = timer.task_id or (open_task.id if open_task else None)
    notice_data = dict(timer.data) | {"state": snapshot.state}
    if timer.kind == "reminder":
        step.notices.append(Notice("reminder", recipients, snapshot.id, task_id, notice_data))
    elif timer.kind == "deadline":
        step.notices.append(Notice("overdue", recipients, snapshot.id, task_id, notice_data))
    elif timer.kind == "escalation":
        dl = (
            process.spec.deadline
            if timer.state == SLA
            else process.spec.states[timer.state].deadline
        )
        assert dl is not None
        esc = dl.escalations[int(timer.data["level"]) - 1]
        notify = tuple(f"role:{r}" for r in esc.notify)
        if esc.reassign and open_task is not None:
            moved = replace(open_task, roles=(esc.reassign,), mode=TaskMode.any.value, signoffs=())
            step.open_tasks[open_task.id] = moved
            step._changed(moved)
            record["data"]["reassigned_to"] = esc.reassign
            notice_data["reassigned_to"] = esc.reassign
            notify += (f"role:{esc.reassign}",)
        step.notices.append(
            Notice(
                "escalated",
                tuple(dict.fromkeys(notify + recipients)),
                snapshot.id,
                task_id,
                notice_data,
            )
        )
        if esc.goto:
            if open_task is not None:
                cancelled = replace(
                    step.open_tasks[open_task.id],
                    status="cancelled",
                    decision="escalated",
                    closed_at=now,
                )
                step.open_tasks[open_task.id] = cancelled
                step._changed(cancelled)
            step.cancel_states.append(snapshot.state)
            target = step.trigger(snapshot.state, GOTO_PREFIX + esc.goto)
            assert target is not None
            step.enter(target, record)
            return step.outcome(snapshot.row_version)
    step.audit.append(step.finish(record))
    return step.outcome(snapshot.row_version)
