"""Who may take an action on a task: roles, stand-ins, four-eyes and countersigning.

Separate from the step itself because the service asks the same question without firing
anything: a task list shows a user only the tasks they may act on now.
"""

from __future__ import annotations

from engine.errors import ActionNotAllowed
from engine.model import TaskMode
from engine.org import Actor
from engine.process import CompiledProcess
from engine.records import Snapshot, TaskRecord
from engine.slots import describe, role


def authorize(
    process: CompiledProcess, snapshot: Snapshot, task: TaskRecord, action: str, actor: Actor
) -> tuple[str, str | None]:
    """Pick the (role, on_behalf_of) under which ``actor`` takes ``action``, or refuse."""
    tspec = process.spec.states[task.state].task
    assert tspec is not None
    pending = task.pending_roles
    options = [(slot, who) for slot in pending for who in actor.identities(slot)]
    claimed = task.claimed_by
    if claimed is not None:
        options = [(s, w) for s, w in options if claimed in (actor.user, w)]
        if not options:
            raise ActionNotAllowed(
                task.id,
                action,
                f"{claimed} has claimed this task; only they may act until "
                "they release it ('unclaim')",
            )
    if not options:
        if pending and all(role(slot) for slot in pending):
            reason = (
                f"needs role {' or '.join(pending)}, which {actor.user} does not hold "
                "(nor stands in for someone who does)"
            )
        else:
            wanted = " or ".join(describe(slot) for slot in pending) or "nobody (it is complete)"
            reason = (
                f"is assigned to {wanted}; {actor.user} is not one of them "
                "(nor stands in for someone who is)"
            )
        raise ActionNotAllowed(task.id, action, reason)
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
