"""Readers of an instance (抄送 cc): people told about it who may ``show`` it but never act.

Readers are kept in the instance's meta, ``meta["cc"]``: one entry per person, ``{user,
by, at}`` (``state`` too when the process definition copied them on entering a state), so
``show`` lists who was copied, by whom and when, and ``remind`` can let them chase it.
Copies come from two places: a person's ``cc`` command, and the definition (``cc:`` on a
state, when it is entered; ``cc:`` at the top, when the instance completes).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.authorize import authorize
from engine.context import decode_variables
from engine.errors import ActionNotAllowed, InstanceOperationNotAllowed
from engine.model import CcSpec
from engine.operations import Cc
from engine.org import Actor
from engine.process import CompiledProcess
from engine.records import NoticeEvent, Outcome, Snapshot

if TYPE_CHECKING:
    from engine.steps import Step

CC = "cc"
BY_DEFINITION = "system"  # who copied readers named by the process definition


def readers(meta: dict[str, Any]) -> tuple[str, ...]:
    """The users an instance has been copied to, in the order they were added."""
    return tuple(entry["user"] for entry in meta.get(CC, ()))


def requester_identity(snapshot: Snapshot, actor: Actor) -> str | None | bool:
    """How ``actor`` speaks for the requester: None as the requester themself, the
    requester's id when standing in for them (their delegate while they are away), False
    when they do not."""
    if actor.user == snapshot.requester:
        return None
    if snapshot.requester in dict(actor.stands_in_for):
        return snapshot.requester
    return False


def may_act_now(process: CompiledProcess, snapshot: Snapshot, actor: Actor) -> bool:
    """Whether ``actor`` may act on one of the instance's open tasks now."""
    for task in snapshot.tasks:
        try:
            authorize(process, snapshot, task, task.actions[0], actor)
        except ActionNotAllowed:
            continue
        return True
    return False


def cc(
    process: CompiledProcess, snapshot: Snapshot, event: Cc, actor: Actor, now: datetime
) -> Outcome:
    """Copy the instance to ``event.users``: the requester (or their delegate) may, and so
    may anyone who has acted on it or may act on it now; nobody else. Allowed whatever the
    status: telling someone about a decided request is a common need."""
    from engine.steps import Step

    def refuse(reason: str) -> InstanceOperationNotAllowed:
        return InstanceOperationNotAllowed(snapshot.id, "cc", reason)

    speaks = requester_identity(snapshot, actor)
    on_behalf_of = speaks if isinstance(speaks, str) else None
    if (
        speaks is False
        and actor.user not in snapshot.approvers
        and not may_act_now(process, snapshot, actor)
    ):
        raise refuse(
            f"only the requester ({snapshot.requester}) and people who acted or may act on "
            f"it may copy it to others; {actor.user} is none of them"
        )
    if not event.users:
        raise refuse("name at least one user to copy it to (--to USER[,USER])")
    users = tuple(dict.fromkeys(event.users))
    unknown = [u for u in users if process.org is not None and u not in process.org.users]
    if unknown:
        raise refuse(f"unknown user {unknown[0]!r}; see 'python run.py users'")
    if snapshot.requester in users:
        raise refuse(f"{snapshot.requester} is the requester and already follows it")
    known = set(readers(snapshot.meta))
    new = [u for u in users if u not in known]
    if not new:
        raise refuse(f"{', '.join(users)} already receive(s) copies of it; nothing to do")
    comment = (event.comment or "").strip() or None
    step = Step(process, snapshot, decode_variables(process, snapshot.variables), now, actor.user)
    add(step, new, actor.user, comment=comment)
    step.log(
        {
            "actor": actor.user,
            "action": "cc",
            "from_state": snapshot.state,
            "to_state": snapshot.state,
            "on_behalf_of": on_behalf_of,
            "data": {"to": new}
            | ({"already": [u for u in users if u in known]} if len(new) < len(users) else {})
            | ({"comment": comment} if comment else {}),
        }
    )
    return step.outcome(snapshot.row_version)


def add(
    step: Step,
    users: Iterable[str],
    by: str,
    *,
    state: str | None = None,
    comment: str | None = None,
) -> list[str]:
    """Add ``users`` as readers (skipping the requester and those already reading), tell
    them, and return who was added."""
    entries = list(step.meta(CC) or ())
    known = {e["user"] for e in entries} | {step.base.requester}
    new = [u for u in dict.fromkeys(users) if u not in known]
    if not new:
        return []
    at = step.now.isoformat()
    extra = {"state": state} if state is not None else {}
    entries += [{"user": u, "by": by, "at": at} | extra for u in new]
    step.set_meta(CC, entries)
    spec = step.process.spec.states.get(step.state)
    step.notify(
        NoticeEvent.cc,
        tuple(f"user:{u}" for u in new),
        None,
        {
            "state": step.state,
            "title": (spec.title if spec else "") or step.process.spec.title,
            "cc_by": by,
        }
        | ({"comment": comment} if comment else {}),
    )
    return new


def resolve(step: Step, entries: Iterable[CcSpec]) -> list[str]:
    """The users a definition's ``cc:`` entries name at this moment (unknown ones skipped:
    a stored version keeps running after people have left)."""
    org = step.process.org
    out: list[str] = []
    for entry in entries:
        if entry.user is not None:
            if org is None or entry.user in org.users:
                out.append(entry.user)
        elif entry.role is not None:
            if org is not None:
                out.extend(org.holders(entry.role))
        elif entry.variable is not None:
            value = step.values.get(entry.variable)
            if isinstance(value, str) and (org is None or value in org.users):
                out.append(value)
    return out


def on_enter(step: Step, target: str, record: dict[str, Any]) -> None:
    """Copy the readers the definition names for ``target`` (and, for a final state, the
    process-level ``cc:``); the audit entry of the step says who was added."""
    spec = step.process.spec
    state = spec.states[target]
    entries = state.cc + (spec.cc if state.final else ())
    if not entries:
        return
    added = add(step, resolve(step, entries), BY_DEFINITION, state=target)
    if added:
        record.setdefault("data", {}).setdefault("cc", []).extend(added)
