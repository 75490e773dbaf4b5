"""Handing a task over: transfer it to a person (转交), claim a role task, release it.

Transfer: the actor's turn on the task becomes one named person's. In an ``any`` task the
whole task is theirs alone (its slots become ``user:<them>``); in a countersign (``all`` /
``sequence``) only the slot the actor fills is replaced, and signatures already given
stay. The original holder can no longer act on it: that is what 转交 means.

Claim: in an ``any`` task waiting for a role, one holder takes it; only they see and may
act on it until they release it (``unclaim``), so two clerks do not work on one request.
A countersign is not claimable: each of its slots already waits for its own person.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from engine.authorize import authorize
from engine.context import decode_variables
from engine.errors import ActionNotAllowed, NotFound
from engine.model import TaskMode
from engine.operations import Claim, Transfer, Unclaim
from engine.org import Actor
from engine.process import CompiledProcess
from engine.records import InstanceStatus, NoticeEvent, Outcome, Snapshot, TaskRecord
from engine.slots import people, user_slot

CLAIMED_BY = "claimed_by"


def open_task(snapshot: Snapshot, task_id: str, operation: str) -> TaskRecord:
    """The open task ``task_id`` of the instance, or a refusal."""
    task = next((t for t in snapshot.tasks if t.id == task_id), None)
    if task is None:
        raise NotFound("task", task_id, "list open tasks with 'tasks'")
    if snapshot.status != InstanceStatus.active:
        raise ActionNotAllowed(task.id, operation, f"the instance is {snapshot.status}")
    return task


def task_notice(process: CompiledProcess, task: TaskRecord) -> dict[str, Any]:
    """What a notice about ``task`` says: its state, title, actions and due time."""
    state = process.spec.states[task.state]
    title = (state.task.title if state.task else "") or state.title
    return {"state": task.state, "title": title, "actions": list(task.actions)} | (
        {"due_at": task.due_at.isoformat()} if task.due_at else {}
    )


def task_entry(
    actor: Actor, action: str, task: TaskRecord, on_behalf_of: str | None, data: dict[str, Any]
) -> dict[str, Any]:
    """The audit entry of an operation on ``task`` that leaves the instance in its state
    (transfer, claim, unclaim, remind, add-signer): one shape, so the audit reads alike."""
    return {
        "actor": actor.user,
        "action": action,
        "from_state": task.state,
        "to_state": task.state,
        "on_behalf_of": on_behalf_of,
        "task_id": task.id,
        "data": data,
    }


def step_for(process: CompiledProcess, snapshot: Snapshot, actor: Actor, now: datetime) -> Any:
    from engine.steps import Step

    return Step(process, snapshot, decode_variables(process, snapshot.variables), now, actor.user)


# --------------------------------------------------------------------------- transfer


def receiver_problem(
    process: CompiledProcess, snapshot: Snapshot, task: TaskRecord, to: str, slot: str
) -> str | None:
    """Why ``to`` may not receive ``slot`` of ``task``, or None if they may.

    The same rules as acting: a known user, present or with a present delegate, not the
    requester under four-eyes, nobody who acted earlier under strict four-eyes, and not
    someone who already signed or already has a turn on this task.
    """
    org = process.org
    if org is None or to not in org.users:
        return f"unknown user {to!r}; see 'python run.py users'"
    user = org.users[to]
    persons = {to}
    if not user.active:
        stand_in = org.users.get(user.delegate) if user.delegate else None
        if stand_in is None or not stand_in.active:
            return f"{to} is not active and has no active delegate to act for them"
        persons.add(user.delegate)  # type: ignore[arg-type]
    tspec = process.spec.states[task.state].task
    assert tspec is not None
    four_eyes = tspec.four_eyes if tspec.four_eyes is not None else process.spec.four_eyes
    if four_eyes and snapshot.requester in persons:
        via = "" if to == snapshot.requester else f" (acting for {to})"
        return f"four-eyes rule: {snapshot.requester}{via} requested this and may not approve it"
    if four_eyes is True and persons & set(snapshot.approvers):
        who = sorted(persons & set(snapshot.approvers))[0]
        return f"four-eyes rule: {who} already acted earlier in this instance"
    signed = {s.user for s in task.signoffs} | {s.on_behalf_of for s in task.signoffs}
    if persons & signed:
        return f"{to} has already signed this task"
    if task.mode != TaskMode.any.value:
        others = [s for s in task.pending_roles if s != slot]
        if any(to in people(s) for s in others):
            return f"{to} already has a turn on this task"
    return None


def transfer(
    process: CompiledProcess, snapshot: Snapshot, event: Transfer, actor: Actor, now: datetime
) -> Outcome:
    task = open_task(snapshot, event.task_id, "transfer")
    comment = (event.comment or "").strip() or None
    if comment is None:
        raise ActionNotAllowed(task.id, "transfer", "say why: a comment is required (--comment)")
    slot, on_behalf_of = authorize(process, snapshot, task, "transfer", actor)
    if event.to in (actor.user, on_behalf_of):
        raise ActionNotAllowed(task.id, "transfer", f"the task is already {event.to}'s turn")
    problem = receiver_problem(process, snapshot, task, event.to, slot)
    if problem is not None:
        raise ActionNotAllowed(task.id, "transfer", f"cannot go to {event.to}: {problem}")
    new_slot = user_slot(event.to)
    if task.mode == TaskMode.any.value:
        roles: tuple[str, ...] = (new_slot,)
    elif task.mode == TaskMode.sequence.value:
        i = len(task.signoffs)
        roles = (*task.roles[:i], new_slot, *task.roles[i + 1 :])
    else:
        signed = {s.role for s in task.signoffs}
        i = next(n for n, r in enumerate(task.roles) if r == slot and r not in signed)
        roles = (*task.roles[:i], new_slot, *task.roles[i + 1 :])
    meta = {k: v for k, v in task.meta.items() if k != CLAIMED_BY}
    moved = replace(task, roles=roles, meta=meta)
    step = step_for(process, snapshot, actor, now)
    step.update_task(moved)
    step.notify(
        NoticeEvent.transferred,
        (f"user:{event.to}",),
        task.id,
        task_notice(process, task) | {"by": actor.user, "comment": comment},
    )
    step.log(
        task_entry(
            actor,
            "transfer",
            task,
            on_behalf_of,
            {"from": slot, "to": event.to, "comment": comment},
        )
    )
    return step.outcome(snapshot.row_version)


# --------------------------------------------------------------------------- claim


def claim(
    process: CompiledProcess, snapshot: Snapshot, event: Claim, actor: Actor, now: datetime
) -> Outcome:
    task = open_task(snapshot, event.task_id, "claim")
    refuse = partial(ActionNotAllowed, task.id, "claim")

    holder = task.claimed_by
    if holder == actor.user:
        raise refuse(f"{actor.user} has already claimed it")
    if holder is not None:
        raise refuse(f"{holder} has claimed it; only they may act until they release it (unclaim)")
    if task.mode != TaskMode.any.value:
        raise refuse(
            f"a {task.mode} task (countersign) cannot be claimed: each of its slots waits "
            "for its own person"
        )
    named = {u for s in task.pending_roles for u in people(s)}
    if len(named) == 1 and all(people(s) for s in task.pending_roles):
        raise refuse(f"it waits for {next(iter(named))} alone; there is nothing to claim")
    slot, on_behalf_of = authorize(process, snapshot, task, "claim", actor)
    step = step_for(process, snapshot, actor, now)
    step.update_task(replace(task, meta=task.meta | {CLAIMED_BY: actor.user}))
    step.log(task_entry(actor, "claim", task, on_behalf_of, {"slot": slot}))
    return step.outcome(snapshot.row_version)


def unclaim(
    process: CompiledProcess, snapshot: Snapshot, event: Unclaim, actor: Actor, now: datetime
) -> Outcome:
    task = open_task(snapshot, event.task_id, "unclaim")
    holder = task.claimed_by
    if holder is None:
        raise ActionNotAllowed(task.id, "unclaim", "nobody has claimed it")
    on_behalf_of = None
    if holder != actor.user:
        if holder not in dict(actor.stands_in_for):
            raise ActionNotAllowed(
                task.id,
                "unclaim",
                f"{holder} claimed it; only they (or their delegate while they are away) "
                "may release it",
            )
        on_behalf_of = holder
    released = replace(task, meta={k: v for k, v in task.meta.items() if k != CLAIMED_BY})
    step = step_for(process, snapshot, actor, now)
    step.update_task(released)
    # it is back in everyone's list: tell them as a newly assigned task is told
    step.notify(
        NoticeEvent.task_assigned,
        released.pending_recipients,
        task.id,
        task_notice(process, task),
    )
    step.log(task_entry(actor, "unclaim", task, on_behalf_of, {"released_by": holder}))
    return step.outcome(snapshot.row_version)
