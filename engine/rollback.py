"""Sending a request back (退回): to a state it has been in, or to its requester.

Where an instance has been is kept in its snapshot's ``meta["visited"]`` (``Step`` adds
each state it enters, with how many approvers there were then). Sending back to state X
cancels the open task (decision ``rolled_back``, its timers with it), enters X again (its
task opens afresh, with its deadline) and forgets the four-eyes record of everyone who
acted from X on, so they may act again. Instances started before ``visited`` was kept
can only go back to states entered since.

Sending back to ``start`` opens the synthetic ``__resubmit__`` task (``engine.process``)
for the requester alone: ``resubmit`` takes the start inputs again and, as the process's
``rollback.resubmit`` says, either runs the whole route again from ``start.to`` (a new
round: earlier approvers may act again) or returns to the state that sent it back;
``withdraw`` ends the request. The receiving party gets a ``sent_back`` notice with the
reason. Every refusal is an ``ActionNotAllowed`` (recorded as ``denied``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from engine.authorize import authorize
from engine.context import decode_variables
from engine.errors import ActionNotAllowed, StartRefused
from engine.handover import open_task
from engine.model import Resubmit
from engine.operations import Rollback
from engine.org import Actor
from engine.process import RESUBMIT, RESUBMIT_ACTIONS, SLA, CompiledProcess
from engine.records import (
    InstanceStatus,
    NoticeEvent,
    Outcome,
    Snapshot,
    TaskRecord,
    TaskStatus,
)
from engine.steps import Step
from engine.values import encode

ACTION = "rollback"
START = "start"  # `--to start`: back to the requester


def _before(visited: list[dict[str, Any]], current: str) -> list[dict[str, Any]]:
    """The entries before the one into ``current`` (the last, when it is there)."""
    return visited[:-1] if visited and visited[-1]["state"] == current else visited


def earlier_states(
    process: CompiledProcess, visited: list[dict[str, Any]], current: str
) -> list[str]:
    """The task states this instance went through before reaching ``current``, oldest
    first, each once: where it may be sent back to."""
    out: dict[str, None] = {}
    for entry in _before(visited, current):
        name = entry["state"]
        state = process.spec.states.get(name)
        if name != current and name != RESUBMIT and state is not None and state.task:
            out[name] = None
    return list(out)


def rollback(
    process: CompiledProcess, snapshot: Snapshot, event: Rollback, actor: Actor, now: datetime
) -> Outcome:
    """Send the instance back from ``event.task_id`` to ``event.to``; or refuse."""
    task = open_task(snapshot, event.task_id, ACTION)
    refuse = partial(ActionNotAllowed, task.id, ACTION)
    policy = process.spec.rollback
    if task.state == RESUBMIT:
        raise refuse("the request is already back with its requester: resubmit or withdraw it")
    if policy.allowed_from is not None and task.state not in policy.allowed_from:
        allowed = ", ".join(policy.allowed_from) or "none"
        raise refuse(
            f"this process does not let {task.state!r} send requests back "
            f"(rollback.allowed_from: {allowed})"
        )
    slot, on_behalf_of = authorize(process, snapshot, task, ACTION, actor)
    comment = (event.comment or "").strip()
    if not comment:
        raise refuse("say why it goes back: --comment TEXT is required")

    step = Step(process, snapshot, decode_variables(process, snapshot.variables), now, actor.user)
    if event.to == START:
        if not policy.to_start:
            raise refuse("this process does not send requests back to the requester")
        target = RESUBMIT
        step.meta_updates["sent_back_from"] = task.state
    else:
        target = event.to
        earlier = earlier_states(process, step.visited, task.state)
        if target not in earlier:
            if target == task.state:
                why = "that is where it is now"
            elif target not in process.spec.states or target == RESUBMIT:
                why = "there is no such state"
            elif process.spec.states[target].task is None:
                why = "that state has no task to send it back to"
            else:
                why = "this instance has never been there"
            choices = ", ".join([*earlier, START])
            raise refuse(f"cannot send back to {target!r}: {why}; choose one of: {choices}")
        # the last time it entered the target: forget what happened from there on
        at = max(i for i, e in enumerate(_before(step.visited, task.state)) if e["state"] == target)
        step.forget_approvers(int(step.visited[at]["approvers"]))
        del step.visited[at:]
    closed = replace(
        task,
        status=TaskStatus.cancelled,
        decision="rolled_back",
        decided_by=actor.user,
        closed_at=now,
    )
    step.update_task(closed)
    step.cancel_timers(task.state)
    record: dict[str, Any] = {
        "actor": actor.user,
        "action": ACTION,
        "from_state": task.state,
        "on_behalf_of": on_behalf_of,
        "task_id": task.id,
        "data": {"role": slot, "to": event.to, "comment": comment},
    }
    step.enter(target, record)
    step.renotify(
        NoticeEvent.task_assigned,
        NoticeEvent.sent_back,
        {"sent_back_from": task.state, "to_requester": target == RESUBMIT},
    )
    step.tell({"by": actor.user, "action": ACTION, "comment": comment})
    return step.outcome(snapshot.row_version)


def resubmit(
    process: CompiledProcess,
    snapshot: Snapshot,
    task: TaskRecord,
    action: str,
    comment: str | None,
    actor: Actor,
    data: Mapping[str, Any],
    now: datetime,
) -> Outcome:
    """The requester answers a request sent back to them: ``resubmit`` or ``withdraw``."""
    if action not in RESUBMIT_ACTIONS:
        choices = ", ".join(RESUBMIT_ACTIONS)
        raise ActionNotAllowed(task.id, action, f"the request was sent back; choose: {choices}")
    slot, on_behalf_of = authorize(process, snapshot, task, action, actor)
    comment = (comment or "").strip() or None
    step = Step(process, snapshot, decode_variables(process, snapshot.variables), now, actor.user)
    record: dict[str, Any] = {
        "actor": actor.user,
        "action": action,
        "from_state": RESUBMIT,
        "on_behalf_of": on_behalf_of,
        "task_id": task.id,
        "data": {"role": slot} | ({"comment": comment} if comment else {}),
    }
    closed = replace(
        task, status=TaskStatus.done, decision=action, decided_by=actor.user, closed_at=now
    )
    step.update_task(closed)
    step.cancel_timers(RESUBMIT)
    came_from = snapshot.meta.get("sent_back_from")
    step.meta_updates["sent_back_from"] = None
    if action == "withdraw":
        step.status = InstanceStatus.withdrawn
        step.cancel_timers(SLA)
        record["to_state"] = RESUBMIT
        step.log(record)
        return step.outcome(snapshot.row_version)
    spec = process.spec
    given = step.take_inputs(spec.states[RESUBMIT].task.actions[action], data, "resubmit")
    step.compute(spec.start.set, "start")
    # a resubmission is a start again: the guard that refuses a start (e.g. a customer the
    # credit table does not list, after start.set read it anew) refuses it too
    if spec.start.when is not None and not process.expr("start.when").test(step.ctx()):
        reason = spec.start.when_message or f"condition not met: {spec.start.when}"
        raise StartRefused(spec.process, reason)
    record["data"]["input"] = encode(given)
    back = spec.rollback.resubmit is Resubmit.back and came_from in spec.states
    target = came_from if back else spec.start.to
    if not back:  # a new round: everyone may act again, and only its states count as earlier
        step.forget_approvers(0)
        step.visited.clear()
    record["data"]["resubmit"] = "return" if back else "restart"
    step.enter(target, record)
    step.tell({"by": actor.user, "action": action} | ({"comment": comment} if comment else {}))
    return step.outcome(snapshot.row_version)
