"""Withdraw (撤回): the requester takes back an active request before it is decided.

The instance ends with status ``withdrawn`` and outcome ``withdrawn`` in the state it was
in; its open tasks are cancelled (decision ``withdrawn``), the timers of that state and
the instance deadline are cancelled, and whoever the open tasks waited for is told.
Only the requester may, or their delegate while they are away (audited as on behalf of
them). The process may narrow it (``withdraw:`` in YAML): not at all, only in some
states, or only until someone other than the requester has acted.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.context import decode_variables
from engine.errors import InstanceClosed, InstanceOperationNotAllowed
from engine.operations import Withdraw
from engine.org import Actor
from engine.process import SLA, CompiledProcess
from engine.readers import requester_identity
from engine.records import InstanceStatus, NoticeEvent, Outcome, Snapshot, TaskStatus

if TYPE_CHECKING:
    from engine.steps import Step

WITHDRAWN = "withdrawn"  # the outcome, and the decision on each cancelled task


def others_who_acted(snapshot: Snapshot) -> list[str]:
    """People other than the requester who acted on the instance (earlier tasks, or a
    signature on an open one): after them, ``until_first_approval`` refuses a withdrawal."""
    signed = [s.user for t in snapshot.tasks for s in t.signoffs]
    acted = list(dict.fromkeys([*snapshot.approvers, *signed]))
    return [u for u in acted if u != snapshot.requester]


def withdraw(
    process: CompiledProcess, snapshot: Snapshot, event: Withdraw, actor: Actor, now: datetime
) -> Outcome:
    from engine.steps import Step

    def refuse(reason: str) -> InstanceOperationNotAllowed:
        return InstanceOperationNotAllowed(snapshot.id, "withdraw", reason)

    speaks = requester_identity(snapshot, actor)
    if speaks is False:
        raise refuse(
            f"only the requester ({snapshot.requester}), or their delegate while they are "
            f"away, may withdraw it; {actor.user} may not"
        )
    on_behalf_of = speaks if isinstance(speaks, str) else None
    if snapshot.status != InstanceStatus.active:
        raise InstanceClosed(snapshot.id, "withdraw", str(snapshot.status), snapshot.outcome)
    rule = process.spec.withdraw
    if not rule.allowed:
        raise refuse(f"process {process.name} does not allow withdrawing (withdraw.allowed: false)")
    if rule.in_states and snapshot.state not in rule.in_states:
        raise refuse(
            f"it can be withdrawn only in {', '.join(rule.in_states)} "
            f"(withdraw.in_states); it is in {snapshot.state}"
        )
    if rule.until_first_approval:
        acted = others_who_acted(snapshot)
        if acted:
            raise refuse(
                f"{', '.join(acted)} already acted on it, and {process.name} allows "
                "withdrawing only until then (withdraw.until_first_approval)"
            )

    comment = (event.comment or "").strip() or None
    step = Step(process, snapshot, decode_variables(process, snapshot.variables), now, actor.user)
    told, cancelled = end_unanswered(step, InstanceStatus.withdrawn, WITHDRAWN, actor.user)
    if on_behalf_of is not None:
        told[f"user:{snapshot.requester}"] = None  # the requester learns their delegate did it
    data: dict[str, Any] = {"state": snapshot.state, "by": actor.user}
    if comment:
        data["comment"] = comment
    if told:
        step.notify(NoticeEvent.withdrawn, tuple(told), None, data)
    step.log(
        {
            "actor": actor.user,
            "action": "withdraw",
            "from_state": snapshot.state,
            "to_state": snapshot.state,
            "on_behalf_of": on_behalf_of,
            "data": {"outcome": WITHDRAWN, "cancelled_tasks": cancelled}
            | ({"comment": comment} if comment else {}),
        }
    )
    return step.outcome(snapshot.row_version)


def end_unanswered(
    step: Step, status: InstanceStatus, decision: str, by: str
) -> tuple[dict[str, None], list[str]]:
    """End an active instance without an answer (withdrawn, or cancelled with its parent):
    every open task cancelled with ``decision``, the state's timers and the deadline clock
    stopped. Returns who its tasks waited for (to tell) and the ids of the tasks closed."""
    snapshot, now = step.base, step.now
    told: dict[str, None] = {}
    closed = []
    for task in snapshot.tasks:
        told.update((r, None) for r in task.pending_recipients)
        step.update_task(
            replace(
                task, status=TaskStatus.cancelled, decision=decision, decided_by=by, closed_at=now
            )
        )
        closed.append(task.id)
    step.cancel_timers(snapshot.state)
    if step.sla is not None and step.sla.stopped_at is None:
        step.sla = step.sla.stop(now)
        step.cancel_timers(SLA)
    step.status = status
    step.outcome_name = decision
    return told, closed
