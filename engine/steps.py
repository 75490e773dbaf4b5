"""One firing's working state: what ``fire`` builds up before it freezes it into an Outcome.

``engine.runtime`` decides what an event does; a :class:`Step` holds what that changes
(variables, tasks, timers, audit entries, notices) and offers the changes as methods, so
the rules read as rules and the bookkeeping stays in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from transitions import EventData, MachineError

from engine import deadlines, links, readers
from engine.assignees import Context as AssigneeContext
from engine.assignees import Resolution
from engine.assignees import resolve as resolve_assignees
from engine.context import context, encode_variables
from engine.decisions import evaluate as evaluate_table
from engine.errors import ExpressionError, InvalidData, WorkflowError
from engine.model import Inputs
from engine.process import RESUBMIT, ROUTE_TRIGGER, CompiledProcess, skip_action
from engine.records import (
    AuditRecord,
    InstanceStatus,
    Notice,
    NoticeEvent,
    Outcome,
    RegisterWrite,
    Snapshot,
    SpawnRequest,
    TaskRecord,
    TaskStatus,
    TimerRecord,
)
from engine.registers import RegisterAccess, check_key, step_access
from engine.sla import SlaClock
from engine.slots import user_slot
from engine.values import VarType, coerce, encode

MAX_HOPS = 50
SYSTEM = "system"


class Step:
    """Mutable working state of one firing; turned into a frozen Outcome at the end.

    The snapshot it starts from is never changed: tasks and the SLA clock are frozen and
    replaced, lists are the step's own.
    """

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
        self.sla: SlaClock | None = snapshot.sla
        self._base_sla = self.sla
        self._task_seq = snapshot.task_seq
        self._approvers = list(snapshot.approvers)
        self._tasks = {t.id: t for t in snapshot.tasks}
        self._opened: list[TaskRecord] = []
        self._changed: dict[str, TaskRecord] = {}
        self._audit: list[AuditRecord] = []
        self._notices: list[tuple[NoticeEvent, tuple[str, ...], str | None, dict[str, Any]]] = []
        self._told: dict[str, Any] = {}
        self._cancel_states: list[str] = []
        self._timers: list[TimerRecord] = []
        self._ctx: dict[str, Any] | None = None  # what expressions see; None once values change
        # the states entered so far, each with how many approvers there were on entering it,
        # so a rollback (退回) knows where the instance has been and whose four-eyes to forget
        self.visited: list[dict[str, Any]] = list(snapshot.meta.get("visited", ()))
        self._visited_base = list(self.visited)
        self.meta_updates: dict[str, Any] = {}  # other engine bookkeeping this step sets
        # the registers this step reads (pinned per register on first read) and writes
        self.registers: RegisterAccess = step_access(process.registers, process.calendar.tz)
        self._register_writes: list[RegisterWrite] = []
        # linked processes (engine.links): what this step asks of other instances, the
        # names only some expressions see (`children`), waiting rounds it left behind
        self.spawns: list[SpawnRequest] = []
        self.cancel_children: list[str] = []
        self.tell_parent: str | None = None
        self.extra: dict[str, Any] = {}
        self.dropped_rounds: list[dict[str, Any]] = []

    # ---------------------------------------------------------------- values

    def ctx(self) -> dict[str, Any]:
        """What an expression sees now; built again only after a variable changed
        (expressions read their context, never change it)."""
        if self._ctx is None:
            self._ctx = context(
                self.values,
                self.now,
                self.actor,
                self.base.requester,
                calendar=self.process.calendar,
            )
            self._ctx.update(self.registers.functions())
        return self._ctx | self.extra if self.extra else self._ctx

    def assign(self, name: str, value: Any, source: str) -> None:
        spec = self.process.spec.variables[name]
        self._ctx = None
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

    def take_inputs(
        self, step: Inputs, data: Mapping[str, Any], where: str, key: str = "start"
    ) -> dict[str, Any]:
        """Coerce and check what the person supplied; returns the accepted inputs.

        ``key`` names the step's expressions (``start`` or ``STATE.ACTION``): a
        ``require_when`` condition is evaluated on the values after this input, so what the
        actor gives in the same step (e.g. the channel) decides what else is required."""
        variables = self.process.spec.variables
        allowed = set(step.require) | set(step.accept) | set(step.require_when)
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
        self._ctx = None
        for name in step.require:
            if self.values.get(name) is None:
                raise InvalidData(name, f"required by {where}: give it with --set {name}=VALUE")
        for name in step.require_when:
            if self.values.get(name) is not None:
                continue
            expr = self.process.expr(f"{key}.require_when.{name}")
            if expr.test(self.ctx()):
                raise InvalidData(
                    name,
                    f"required by {where} when {expr.source}: give it with --set {name}=VALUE",
                )
        return given

    # ---------------------------------------------------------------- moving

    def trigger(self, source: str, trigger: str) -> str | None:
        """Where ``trigger`` leads from ``source``: the destination of the first of the
        machine's transitions whose guards hold, or None if none holds.

        The machine is read, never moved: no model is attached to it and none is set to a
        state, so firings need no lock and share nothing (``transitions`` would otherwise
        keep a model's state and a queue on the shared machine). The guards are checked by
        ``transitions`` itself, as its ``Event.trigger`` does, with the same event data.
        """
        machine = self.process.machine
        assert machine is not None
        event = machine.events[trigger]
        if source not in event.transitions:
            raise MachineError(f"Can't trigger event {trigger} from state {source}!")
        data = None
        for transition in event.transitions[source]:
            if transition.conditions and data is None:
                state = machine.get_state(source)
                data = EventData(state, event, machine, None, (), {"context": self.ctx()})
            if all(condition.check(data) for condition in transition.conditions):
                return transition.dest
        return None

    def enter(self, target: str, record: dict[str, Any]) -> None:
        """Enter ``target`` and follow automatic routes; ``record`` is the audit entry to fill."""
        records = [record]
        links.leave(self)
        self._follow(target, records)
        for r in records:
            self.log(r)

    def _follow(self, target: str, records: list[dict[str, Any]]) -> None:
        spec = self.process.spec
        record = records[-1]
        for _ in range(MAX_HOPS):
            state = spec.states[target]
            self.state = target
            # a state entered again closes a loop: the way here is the path up to it, so the
            # loop's states are dropped (not rollback targets from here) and the list stays
            # as short as the number of states however often an instance loops
            again = next((i for i, e in enumerate(self.visited) if e["state"] == target), None)
            if again is not None:
                del self.visited[again:]
            self.visited.append({"state": target, "approvers": len(self._approvers)})
            record["to_state"] = target
            deadlines.on_enter(self, target, record)
            readers.on_enter(self, target, record)
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
            if state.write:
                entry["register_writes"] = self.write_registers(target)
            if entry:
                record.setdefault("data", {}).update(entry)
            if state.spawn and links.spawn(self, target, record):
                return  # a route state holding until its waited children have finished
            if state.final:
                self.status = InstanceStatus.completed
                self.outcome_name = state.outcome or target
                record.setdefault("data", {})["outcome"] = self.outcome_name
                self.notify(
                    NoticeEvent.completed,
                    (f"user:{self.base.requester}",),
                    None,
                    {"outcome": self.outcome_name, "state": target},
                )
                return
            if state.task is not None:
                assigned = self.assignees(target)
                repeat = self.repeated(target, assigned)
                if repeat is not None:
                    # asked once: who approved the step before approves this one too
                    record = {
                        "actor": SYSTEM,
                        "action": "auto_approved",
                        "from_state": target,
                        "data": {
                            "action": repeat[0],
                            "for": self.actor,
                            "reason": f"{self.actor} approved the step before and is the only "
                            "one asked here (auto_approve_repeat)",
                        },
                    }
                    records.append(record)
                    target = repeat[1]
                    continue
                if assigned is None or assigned.skip is None:
                    task = self.open_task(target, assigned)
                    record.setdefault("data", {})["opened_task"] = task.id
                    if assigned is not None:
                        record["data"]["assigned"] = assigned.to_json()
                    return
                # nobody to ask and the owner said skip: the system takes the action
                nxt = self.trigger(target, assigned.skip)
                if nxt is None:
                    raise WorkflowError(
                        f"state {target!r}: nobody can take its task and the skip action "
                        f"{assigned.skip!r} is not allowed now (its 'when' is false)"
                    )
                record = {
                    "actor": SYSTEM,
                    "action": "skipped",
                    "from_state": target,
                    "data": {"action": assigned.skip, "skipped": assigned.to_json()},
                }
                records.append(record)
                target = nxt
                continue
            nxt = self.trigger(target, ROUTE_TRIGGER)
            self.extra.clear()  # `children` is for the route of the state that waited
            if nxt is None:  # pragma: no cover - validation demands an otherwise branch
                raise ExpressionError(target, "no route branch matched")
            record = {"actor": SYSTEM, "action": "route", "from_state": target}
            records.append(record)
            target = nxt
        raise ExpressionError(target, f"more than {MAX_HOPS} automatic steps: a routing loop?")

    def write_registers(self, sname: str) -> list[dict[str, Any]]:
        """The register rows state ``sname`` writes on entry; what the audit says of them.

        Each write reads the row first (pinning the register's version, as every read of
        the step): a new row starts from the fields' defaults, and storage refuses the
        write if the row changed after that version (a lost update).
        """
        state = self.process.spec.states[sname]
        said: list[dict[str, Any]] = []
        for i, wspec in enumerate(state.write):
            reg = self.registers.spec(wspec.name)
            kexpr = self.process.expr(f"{sname}.write.{i}.key")
            try:
                key = check_key(reg.name, kexpr.evaluate(self.ctx()))
            except InvalidData as exc:
                raise ExpressionError(kexpr.source, exc.reason, kexpr.where) from None
            existing = self.registers.get(reg.name, key)
            values: dict[str, Any] = {}
            if existing is None:
                values = {k: v for k, v in reg.new_row().items() if v is not None}
            for fname in wspec.set:
                expr = self.process.expr(f"{sname}.write.{i}.set.{fname}")
                fspec = reg.fields[fname]
                try:
                    value = fspec.coerce(fname, expr.evaluate(self.ctx()))
                except InvalidData as exc:
                    hint = " (round money with round_fen(...))" if "fen" in exc.reason else ""
                    raise ExpressionError(
                        expr.source,
                        f"result for {reg.name}.{fname}: {exc.reason}{hint}",
                        expr.where,
                    ) from None
                values[fname] = encode(value)
            self._register_writes.append(
                RegisterWrite(
                    register=reg.name,
                    key=key,
                    values=values,
                    read_version=self.registers.read_versions.get(reg.name),
                    process=self.process.name,
                    instance_id=self.base.id,
                    actor=self.actor,
                    at=self.now,
                )
            )
            said.append({"register": reg.name, "key": key, "set": dict(values)})
        return said

    # ---------------------------------------------------------------- tasks

    def assignees(self, sname: str) -> Resolution | None:
        """Who the task of ``sname`` goes to, for a task with ``assignees`` (else None):
        resolved now from the org the process was compiled with, the instance's requester
        and variables. Refused, changing nothing, when nobody and no fallback is found."""
        tspec = self.process.spec.states[sname].task
        assert tspec is not None
        if not tspec.assignees:
            return None
        org = self.process.org
        if org is None:  # pragma: no cover - compile_process always attaches the org
            raise WorkflowError(f"process {self.process.name!r} was compiled without an org")
        fallbacks = tspec.if_none or self.process.spec.if_none
        result = resolve_assignees(
            org,
            tspec.assignees,
            AssigneeContext(self.base.requester, self.values, self.process.calendar.tz),
            self.now,
            mode=tspec.mode.value,
            if_none=fallbacks,
            default_skip=next((skip_action(tspec, f) for f in fallbacks if f == "skip"), None),
        )
        if result.unresolved:
            raise WorkflowError(
                f"nobody can take the task of state {sname!r}: {'; '.join(result.unresolved)}; "
                f"fix {org.file} (a head, a manager, a delegate) or give the task 'if_none:'"
            )
        return result

    def repeated(self, sname: str, assigned: Resolution | None) -> tuple[str, str] | None:
        """``(action, next state)`` when the task of ``sname`` would only ask the person who
        just approved in this step and its owner opted in (``auto_approve_repeat``); None
        otherwise, and always where four-eyes would keep that person out."""
        tspec = self.process.spec.states[sname].task
        assert tspec is not None
        if not tspec.auto_approve_repeat or assigned is None or not assigned.slots:
            return None
        if self.actor not in self._approvers[len(self.base.approvers) :]:
            return None  # not an approval in this step (a start, a timer)
        if any(slot.people != (self.actor,) for slot in assigned.slots):
            return None
        four_eyes = tspec.four_eyes if tspec.four_eyes is not None else self.process.spec.four_eyes
        if four_eyes is True or (four_eyes and self.actor == self.base.requester):
            return None
        action = skip_action(tspec, "skip")
        target = self.trigger(sname, action) if action is not None else None
        return (action, target) if action is not None and target is not None else None

    def open_task(self, sname: str, assigned: Resolution | None = None) -> TaskRecord:
        tspec = self.process.spec.states[sname].task
        assert tspec is not None
        if sname == RESUBMIT:  # sent back to the requester: theirs alone
            roles: tuple[str, ...] = (user_slot(self.base.requester),)
        elif assigned is not None:
            roles = assigned.roles
        elif tspec.role is not None:
            roles = (tspec.role,)
        elif tspec.role_from is not None:
            expr = self.process.expr(f"{sname}.role_from")
            role = expr.evaluate(self.ctx())
            if not isinstance(role, str) or role not in self.process.known_roles:
                raise ExpressionError(expr.source, f"gave {role!r}, which is not a known role")
            roles = (role,)
        else:
            roles = tspec.roles
        self._task_seq += 1
        task_id = f"{self.base.id}-{self._task_seq}"
        due_at = deadlines.task_due(self, sname, task_id)
        task = TaskRecord(
            id=task_id,
            instance_id=self.base.id,
            process=self.process.name,
            name=sname,
            state=sname,
            roles=roles,
            mode=tspec.mode.value,
            actions=tuple(tspec.actions),
            status=TaskStatus.open,
            created_at=self.now,
            due_at=due_at,
            meta={"assigned": assigned.to_json()} if assigned is not None else {},
        )
        self._opened.append(task)
        self._tasks[task.id] = task
        self.notify(
            NoticeEvent.task_assigned,
            task.pending_recipients,
            task.id,
            {
                "state": sname,
                "title": tspec.title or self.process.spec.states[sname].title,
                "actions": list(task.actions),  # so a notice can print one command per action
            }
            | ({"due_at": due_at.isoformat()} if due_at is not None else {}),
        )
        return task

    def task(self, task_id: str) -> TaskRecord:
        """The task as this step has left it so far."""
        return self._tasks[task_id]

    def tasks(self) -> Iterable[TaskRecord]:
        """The instance's tasks as this step has left them so far (closed ones included)."""
        return list(self._tasks.values())

    def update_task(self, task: TaskRecord) -> None:
        """Record ``task`` (signed, closed, reassigned, re-dated) as it is after the step."""
        self._tasks[task.id] = task
        self._changed.pop(task.id, None)
        self._changed[task.id] = task

    def signed_by(self, user: str, on_behalf_of: str | None) -> None:
        """``user`` (and whom they stand in for) acted: four-eyes keeps them from the next
        task."""
        self._approvers.append(user)
        if on_behalf_of:
            self._approvers.append(on_behalf_of)

    def forget_approvers(self, keep: int) -> None:
        """Keep only the first ``keep`` approvers: a request sent back to an earlier step
        goes through it again, and those who acted there or after may act again."""
        del self._approvers[keep:]

    # ---------------------------------------------------------------- what it leaves

    def set_timers(self, timers: Iterable[TimerRecord]) -> None:
        self._timers.extend(timers)

    def cancel_timers(self, state: str) -> None:
        """Cancel every pending timer of ``state`` (the pseudo-state ``SLA`` included)."""
        self._cancel_states.append(state)

    def notify(
        self,
        event: NoticeEvent,
        recipients: tuple[str, ...],
        task_id: str | None,
        data: dict[str, Any],
    ) -> None:
        self._notices.append((event, recipients, task_id, data))

    def renotify(self, old: NoticeEvent, new: NoticeEvent, data: Mapping[str, Any]) -> None:
        """Send this step's ``old`` notices as ``new`` ones with ``data`` added (a task
        reopened by a send-back is told once, as sent back, not also as newly assigned)."""
        self._notices = [
            (new, r, t, d | dict(data)) if e == old else (e, r, t, d)
            for e, r, t, d in self._notices
        ]

    def tell(self, data: Mapping[str, Any]) -> None:
        """Add ``data`` to every notice of this step (who acted, and why)."""
        self._told.update(data)

    def log(self, record: dict[str, Any]) -> None:
        """Add the audit entry ``record`` (actor, action, states, task_id, data)."""
        self._audit.append(
            AuditRecord(
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
        )

    def meta(self, key: str) -> Any:
        """A key of the instance's meta as this step has left it so far."""
        return self.meta_updates[key] if key in self.meta_updates else self.base.meta.get(key)

    def set_meta(self, key: str, value: Any) -> None:
        """Set a key of the instance's meta (JSON-safe), e.g. ``cc`` readers; None removes it."""
        self.meta_updates[key] = value

    def _meta(self) -> dict[str, Any]:
        """The snapshot's meta, copied only if this step changed the clock, the states
        visited or other bookkeeping (readers, ...)."""
        meta = self.base.meta
        if self.sla is not self._base_sla and self.sla is not None:
            meta = {**meta, "sla": self.sla.to_json()}
        if self.visited != self._visited_base:
            meta = {**meta, "visited": self.visited}
        if self.meta_updates:  # None removes a key
            meta = {**meta, **self.meta_updates}
            meta = {k: v for k, v in meta.items() if k not in self.meta_updates or v is not None}
        return meta

    def note_cancelled(self, children: list[str]) -> None:
        """Audit that this step cancels ``children`` (linked processes) as it ends or moves on."""
        self.log(
            {
                "actor": SYSTEM,
                "action": "children_cancelled",
                "from_state": self.state,
                "to_state": self.state,
                "data": {"children": children},
            }
        )

    def outcome(self, expected: int | None) -> Outcome:
        links.settle(self)
        snapshot = replace(
            self.base,
            state=self.state,
            status=self.status,
            outcome=self.outcome_name,
            variables=encode_variables(self.values),
            updated_at=self.now,
            tasks=tuple(t for t in self._tasks.values() if t.status == TaskStatus.open),
            task_seq=self._task_seq,
            approvers=tuple(self._approvers),
            meta=self._meta(),
        )
        told = self._told
        process = {"process": self.process.name}
        instance = self.base.id
        audit = self._audit
        if self.registers.read_versions and audit:
            # what this step's decisions were based on: the version of each register read
            first = audit[0]
            data = {
                **first.data,
                "registers_read": dict(sorted(self.registers.read_versions.items())),
            }
            audit = [replace(first, data=data), *audit[1:]]
        return Outcome(
            snapshot=snapshot,
            expected_row_version=expected,
            opened=tuple(self._opened),
            changed=tuple(self._changed.values()),
            audit=tuple(audit),
            timers_set=tuple(self._timers),
            timers_cancel_states=tuple(dict.fromkeys(self._cancel_states)),
            notices=tuple(
                Notice(event, recipients, instance, task_id, process | data | told)
                for event, recipients, task_id, data in self._notices
            ),
            register_writes=tuple(self._register_writes),
            spawns=tuple(self.spawns),
            cancel_children=tuple(self.cancel_children),
            tell_parent=self.tell_parent,
        )
