"""Adding signers to a task (加签): before the adder, after them, or beside them.

The mechanism is ``engine.groups``: a task waits for its current group, then the queued
ones. Adding *before* puts the added people in front and queues the adder's own turn
(``kind: return``) behind them; adding *after* is the adder agreeing now (a signature
like a countersign, the agreeing action's guard checked) with the added people queued
next; adding *in parallel* widens the adder's current group. From then on ``_act`` in
``engine.runtime`` does the rest: the agreeing action passes a turn, any other action by
someone whose turn it is decides the task at once.

Every refusal is an ``ActionNotAllowed`` (the service records it as ``denied``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from engine.authorize import authorize
from engine.context import decode_variables
from engine.errors import ActionNotAllowed, InvalidData
from engine.groups import group, next_group
from engine.handover import open_task, task_entry
from engine.model import TaskMode
from engine.operations import AddSigners, Where
from engine.org import Actor
from engine.process import RESUBMIT, CompiledProcess
from engine.records import NoticeEvent, Outcome, Signoff, Snapshot, TaskRecord
from engine.slots import USER, people, user_slot
from engine.steps import Step

ACTION = "add_signer"  # what the audit and a refusal call this operation
MODES = tuple(m.value for m in TaskMode)


def add_signers(
    process: CompiledProcess, snapshot: Snapshot, event: AddSigners, actor: Actor, now: datetime
) -> Outcome:
    """Add ``event.users`` to the task ``where`` relative to ``actor``; or refuse."""
    task = open_task(snapshot, event.task_id, ACTION)
    refuse = partial(ActionNotAllowed, task.id, ACTION)
    tspec = process.spec.states[task.state].task
    assert tspec is not None
    agree = tspec.agree
    if agree is None or task.state == RESUBMIT:
        raise refuse(
            "this task has no agreeing action, so added signers could not agree; the "
            f"process owner declares one with 'countersign: ACTION' on state {task.state!r}"
        )
    if event.mode not in MODES:
        raise refuse(f"unknown mode {event.mode!r}; choose one of: {', '.join(MODES)}")
    slot, on_behalf_of = authorize(process, snapshot, task, ACTION, actor)
    comment = (event.comment or "").strip() or None
    users = _check_users(process, snapshot, task, event.users, actor, on_behalf_of, now, refuse)
    if event.mode == TaskMode.any:
        added: tuple[str, ...] = (user_slot(*users),)
    else:
        added = tuple(user_slot(u) for u in users)
    mode = event.mode if len(added) > 1 else TaskMode.any.value

    step = Step(process, snapshot, decode_variables(process, snapshot.variables), now, actor.user)
    record: dict[str, Any] = task_entry(
        actor,
        ACTION,
        task,
        on_behalf_of,
        {"role": slot, "users": list(users), "where": event.where.value, "mode": mode}
        | ({"comment": comment} if comment else {}),
    )
    meta = {k: v for k, v in task.meta.items() if k != "claimed_by"}
    me = user_slot(actor.user)
    if event.where is Where.before:
        if task.mode == TaskMode.any:
            back = group((me,), TaskMode.any.value, "return")
        else:
            mine = tuple(me if s == slot else s for s in task.roles)
            back = group(mine, task.mode, "return", task.signoffs)
        meta["queue"] = [back, *task.queue]
        changed = replace(task, roles=added, mode=mode, signoffs=(), meta=meta)
    elif event.where is Where.after:
        aspec = tspec.actions[agree]
        try:
            step.take_inputs(aspec, {}, f"action {agree!r}", f"{task.state}.{agree}")
        except InvalidData as exc:  # agreeing first needs what the action requires
            raise refuse(f"you agree by adding signers after you: {exc}") from None
        step.compute(aspec.set, f"{task.state}.{agree}")
        if aspec.when is not None and not process.expr(f"{task.state}.{agree}.when").test(
            step.ctx()
        ):
            raise refuse(
                f"you agree by adding signers after you, and {agree!r} is not possible now: "
                + (aspec.when_message or f"condition not met: {aspec.when}")
            )
        if aspec.comment.value == "required" and not comment:
            raise refuse(f"{agree!r} needs a comment: add --comment TEXT")
        signoff = Signoff(actor.user, slot, agree, now, on_behalf_of, comment)
        step.signed_by(actor.user, on_behalf_of)
        meta["queue"] = [group(added, mode, "after"), *task.queue]
        changed = replace(task, signoffs=(*task.signoffs, signoff), meta=meta)
        while not changed.pending_roles and changed.queue:
            changed = next_group(changed)
        record["data"]["signed"] = agree
    else:
        if task.mode == TaskMode.any:
            changed = replace(task, roles=(me, *added), mode=TaskMode.all.value, meta=meta)
        elif task.mode == TaskMode.all:
            changed = replace(task, roles=(*task.roles, *added), meta=meta)
        else:  # in a sequence they sign right after the adder, before the rest
            at = task.roles.index(slot) + 1
            changed = replace(task, roles=(*task.roles[:at], *added, *task.roles[at:]), meta=meta)
    step.update_task(changed)
    record["data"]["waiting_for"] = list(changed.pending_roles)
    step.log(record)
    now_pending = set(changed.pending_recipients)
    step.notify(
        NoticeEvent.signer_added,
        tuple(f"{USER}{u}" for u in users),
        task.id,
        {
            "state": task.state,
            "title": tspec.title or process.spec.states[task.state].title,
            "where": event.where.value,
            "mode": mode,
            "their_turn": any(f"{USER}{u}" in now_pending for u in users),
            "actions": list(task.actions),
        }
        | ({"due_at": task.due_at.isoformat()} if task.due_at else {}),
    )
    step.tell({"by": actor.user, "action": ACTION} | ({"comment": comment} if comment else {}))
    return step.outcome(snapshot.row_version)


def _check_users(
    process: CompiledProcess,
    snapshot: Snapshot,
    task: TaskRecord,
    users: tuple[str, ...],
    actor: Actor,
    on_behalf_of: str | None,
    now: datetime,
    refuse: Any,
) -> tuple[str, ...]:
    """The users to add, each a known person who can act (or has a delegate who can), not
    the adder, not kept out by four-eyes, not already awaited on this task."""
    users = tuple(dict.fromkeys(u.strip() for u in users if u.strip()))
    if not users:
        raise refuse("name at least one user to add (--users U1[,U2])")
    org = process.org
    tspec = process.spec.states[task.state].task
    assert tspec is not None and org is not None
    four_eyes = tspec.four_eyes if tspec.four_eyes is not None else process.spec.four_eyes
    awaited = {u for s in task.pending_roles for u in people(s)}
    awaited |= {u for g in task.queue for s in g["roles"] for u in people(s)}
    for user in users:
        spec = org.users.get(user)
        if spec is None:
            raise refuse(f"unknown user {user!r}; see 'python run.py users'")
        if user in (actor.user, on_behalf_of):
            raise refuse(f"{user} cannot add themselves; name other people")
        persons = {user}  # who would really sign: the user, or their stand-in today
        if not spec.active:
            stand_in, why = org.stand_in(user, now, process.calendar.tz)
            if stand_in is None:
                raise refuse(f"{why}; nobody could act for them")
            persons.add(stand_in)
        if four_eyes and snapshot.requester in persons:
            via = "" if user == snapshot.requester else f" (who would sign for {user})"
            raise refuse(
                f"four-eyes rule: {snapshot.requester}{via} requested this and may not sign "
                "it; add someone else"
            )
        if four_eyes is True and persons & set(snapshot.approvers):
            who = sorted(persons & set(snapshot.approvers))[0]
            raise refuse(
                f"four-eyes rule: {who} already acted earlier in this instance; add someone else"
            )
        if user in awaited:
            raise refuse(f"{user} is already awaited on this task")
    return users
