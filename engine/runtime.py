"""The pure core: ``fire(process, snapshot, event, actor, data, now) -> Outcome``.

No database, no clock, no org lookups beyond the ``Actor`` handed in: the same inputs
always give the same outcome, so every rule can be tested without storage, and storage
can apply the result in one transaction or not at all. This module says what each event
does; ``engine.steps`` keeps what a step changes, ``engine.deadlines`` its timers and the
SLA clock, ``engine.authorize`` who may act.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from engine import deadlines, handover, links, readers, reminding, withdrawal
from engine.addsign import add_signers
from engine.authorize import authorize
from engine.context import decode_variables, live_values
from engine.errors import ActionNotAllowed, NotFound, StartRefused, WorkflowError
from engine.escalate import reassign
from engine.groups import next_group
from engine.links import CancelChild, ChildFinished, LinkEvent
from engine.model import TaskMode
from engine.operations import (
    AddSigners,
    Cc,
    Claim,
    InstanceOperation,
    Remind,
    Rollback,
    TaskOperation,
    Transfer,
    Unclaim,
    Withdraw,
)
from engine.org import Actor
from engine.process import GOTO_PREFIX, NEW, RESUBMIT, SLA, START_TRIGGER, CompiledProcess
from engine.records import (
    InstanceStatus,
    NoticeEvent,
    Outcome,
    Signoff,
    Snapshot,
    TaskStatus,
    TimerKind,
    TimerRecord,
)
from engine.registers import RegisterReader, reading
from engine.rollback import resubmit, rollback
from engine.slots import recipients as slot_recipients
from engine.steps import SYSTEM, Step
from engine.values import coerce, encode

# what the service imports from here: the core's one entry point and its helpers
__all__ = [
    "SYSTEM",
    "Act",
    "CancelChild",
    "ChildFinished",
    "Event",
    "RegisterReader",
    "Start",
    "TimerFired",
    "authorize",
    "decode_variables",
    "fire",
    "live_values",
]


@dataclass(frozen=True)
class Start:
    """Start a new instance with this id (the service picks ids; the engine stays pure).

    ``on_behalf_of``: the absent user the actor stands in for (a schedule's ``as:`` user
    who is away); that user stays the requester, and the audit names both.
    """

    instance_id: str
    version: int = 1
    on_behalf_of: str | None = None
    parent: Mapping[str, Any] | None = None  # a spawned child's parent {id, process, state}


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


Event = Start | Act | TimerFired | TaskOperation | InstanceOperation | LinkEvent


def fire(
    process: CompiledProcess,
    snapshot: Snapshot | None,
    event: Event,
    actor: Actor,
    data: Mapping[str, Any],
    now: datetime,
    *,
    registers: RegisterReader | None = None,
) -> Outcome:
    """Apply one event to one instance and say what changes; raise if it is refused.

    ``registers`` answers the step's register reads (engine.registers), each register as
    of one version pinned on its first read; None for a process that reads no register
    (a read is then an error). Register rows the step writes are in the outcome.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    with reading(registers):
        return _fire(process, snapshot, event, actor, data, now)


def _fire(
    process: CompiledProcess,
    snapshot: Snapshot | None,
    event: Event,
    actor: Actor,
    data: Mapping[str, Any],
    now: datetime,
) -> Outcome:
    if isinstance(event, Start):
        if snapshot is not None:
            raise WorkflowError(f"instance {event.instance_id} already exists")
        return _start(process, event, actor, data, now)
    if snapshot is None:
        raise NotFound("instance", None)
    if isinstance(event, TimerFired):
        return _timer(process, snapshot, event.timer, now)
    if isinstance(event, ChildFinished | CancelChild):
        return links.fire_link(process, snapshot, event, now)
    if isinstance(event, Withdraw):
        return withdrawal.withdraw(process, snapshot, event, actor, now)
    if isinstance(event, Cc):
        return readers.cc(process, snapshot, event, actor, now)
    if isinstance(event, Transfer):
        return handover.transfer(process, snapshot, event, actor, now)
    if isinstance(event, Claim):
        return handover.claim(process, snapshot, event, actor, now)
    if isinstance(event, Unclaim):
        return handover.unclaim(process, snapshot, event, actor, now)
    if isinstance(event, Remind):
        return reminding.remind(process, snapshot, event, actor, now)
    if isinstance(event, AddSigners):
        return add_signers(process, snapshot, event, actor, now)
    if isinstance(event, Rollback):
        return rollback(process, snapshot, event, actor, now)
    if not isinstance(event, Act):
        raise WorkflowError(f"{type(event).__name__} is not supported by this engine yet")
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
        status=InstanceStatus.active,
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
    step = Step(process, base, values, now, actor.user)
    given = step.take_inputs(spec.start, data, "start")
    step.compute(spec.start.set, "start")
    if spec.start.when is not None and not process.expr("start.when").test(step.ctx()):
        reason = spec.start.when_message or f"condition not met: {spec.start.when}"
        raise StartRefused(spec.process, reason)
    target = step.trigger(NEW, START_TRIGGER)
    assert target is not None
    record: dict[str, Any] = {
        "actor": actor.user,
        "action": "start",
        "from_state": None,
        "on_behalf_of": event.on_behalf_of,
        "data": {"input": encode(given)},
    }
    if event.parent is not None:  # a linked process: the child knows its parent
        step.set_meta("parent", dict(event.parent))
        record["data"]["parent"] = dict(event.parent)
    deadlines.start_clock(step, record)
    step.enter(target, record)
    return step.outcome(None)


def _act(
    process: CompiledProcess,
    snapshot: Snapshot,
    event: Act,
    actor: Actor,
    data: Mapping[str, Any],
    now: datetime,
) -> Outcome:
    task = handover.open_task(snapshot, event.task_id, event.action)
    if task.state == RESUBMIT:  # sent back to the requester (engine.rollback)
        return resubmit(process, snapshot, task, event.action, event.comment, actor, data, now)
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

    step = Step(process, snapshot, decode_variables(process, snapshot.variables), now, actor.user)
    given = step.take_inputs(
        aspec, data, f"action {event.action!r}", f"{task.state}.{event.action}"
    )
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
    step.signed_by(actor.user, on_behalf_of)
    signoffs = (*task.signoffs, signoff)
    # signatures collect while a group must agree together (会签/依次) or more signers are
    # queued (加签); the agreeing action passes this person's turn, any other decides now
    joint = task.mode != TaskMode.any.value or bool(task.queue)
    signed = replace(task, signoffs=signoffs) if joint and event.action == tspec.agree else None
    while signed is not None and not signed.pending_roles and signed.queue:
        signed = next_group(signed)
    if signed is not None and signed.pending_roles:
        # not everyone has agreed yet, the task stays open; every signature must meet the
        # guard, not only the last one
        if aspec.when is not None:
            guard = process.expr(f"{task.state}.{event.action}.when")
            if not guard.test(step.ctx()):
                reason = aspec.when_message or f"condition not met: {aspec.when}"
                raise ActionNotAllowed(task.id, event.action, reason)
        step.update_task(signed)
        record["to_state"] = task.state
        record["data"]["waiting_for"] = list(signed.pending_roles)
        step.log(record)
        if signed.roles != task.roles or signed.mode != task.mode:
            # the next group's turn: tell them as a newly assigned task is told
            step.notify(
                NoticeEvent.task_assigned,
                signed.pending_recipients,
                task.id,
                {"state": task.state, "actions": list(task.actions)}
                | ({"due_at": task.due_at.isoformat()} if task.due_at else {}),
            )
            step.tell(
                {"by": actor.user, "action": event.action}
                | ({"comment": comment} if comment else {})
            )
        return step.outcome(snapshot.row_version)
    target = step.trigger(task.state, event.action)
    if target is None:
        reason = aspec.when_message or f"condition not met: {aspec.when}"
        raise ActionNotAllowed(task.id, event.action, reason)
    if aspec.extend is not None:
        deadlines.extend(step, aspec.extend, record, task, event.action)
    closed = replace(
        task,
        signoffs=signoffs,
        status=TaskStatus.done,
        decision=event.action,
        decided_by=actor.user,
        closed_at=now,
    )
    step.update_task(closed)
    step.cancel_timers(task.state)
    step.enter(target, record)
    # whoever is told about this step (next task, completion) learns who did it and why
    step.tell(
        {"by": actor.user, "action": event.action} | ({"comment": comment} if comment else {})
    )
    return step.outcome(snapshot.row_version)


def _timer(
    process: CompiledProcess, snapshot: Snapshot, timer: TimerRecord, now: datetime
) -> Outcome:
    """Fire one timer: remind, mark overdue, or escalate (notify, reassign, move)."""
    step = Step(process, snapshot, decode_variables(process, snapshot.variables), now, SYSTEM)
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
    stale = snapshot.status != InstanceStatus.active or (
        timer.state != SLA
        and (timer.state != snapshot.state or open_task is None or open_task.id != timer.task_id)
    )
    if timer.state == SLA:
        stale = stale or (step.sla is not None and not step.sla.running)
    if stale:
        record["action"] = f"{timer.kind}_skipped"
        step.log(record)
        return step.outcome(snapshot.row_version)
    recipients = open_task.pending_recipients if open_task else ()
    task_id = timer.task_id or (open_task.id if open_task else None)
    notice_data = dict(timer.data) | {"state": snapshot.state}
    if open_task is not None:
        notice_data["actions"] = list(open_task.actions)
    if timer.kind == TimerKind.reminder:
        step.notify(NoticeEvent.reminder, recipients, task_id, notice_data)
    elif timer.kind == TimerKind.deadline:
        step.notify(NoticeEvent.overdue, recipients, task_id, notice_data)
    elif timer.kind == TimerKind.escalation:
        dl = (
            process.spec.deadline
            if timer.state == SLA
            else process.spec.states[timer.state].deadline
        )
        assert dl is not None
        esc = dl.escalations[int(timer.data["level"]) - 1]
        notify = tuple(f"role:{r}" for r in esc.notify)
        if esc.reassign and open_task is not None:
            # countersignatures given stay; only the awaited slots move (engine.escalate)
            moved = reassign(process.org, snapshot, open_task, esc, now)
            step.update_task(moved.task)
            to = ", ".join(moved.targets) or None
            record["data"]["reassigned_to"] = to
            record["data"]["keep_original"] = esc.keep_original
            if moved.why:
                record["data"]["resolved"] = list(moved.why)
            notice_data["reassigned_to"] = to
            notify += slot_recipients(moved.targets)
            if not esc.keep_original:
                # the people the task was taken from are told, but not how to act on it:
                # they no longer may (their own notice, without the task's actions)
                still = set(moved.task.pending_recipients)
                replaced = tuple(r for r in recipients if r not in still and r not in notify)
                recipients = tuple(r for r in recipients if r not in replaced)
                if replaced:
                    taken = {k: v for k, v in notice_data.items() if k != "actions"}
                    step.notify(
                        NoticeEvent.escalated, replaced, task_id, taken | {"taken_from_you": True}
                    )
        step.notify(
            NoticeEvent.escalated, tuple(dict.fromkeys(notify + recipients)), task_id, notice_data
        )
        if esc.goto:
            if open_task is not None:
                cancelled = replace(
                    step.task(open_task.id),
                    status=TaskStatus.cancelled,
                    decision="escalated",
                    closed_at=now,
                )
                step.update_task(cancelled)
            step.cancel_timers(snapshot.state)
            target = step.trigger(snapshot.state, GOTO_PREFIX + esc.goto)
            assert target is not None
            step.enter(target, record)
            return step.outcome(snapshot.row_version)
    step.log(record)
    return step.outcome(snapshot.row_version)
