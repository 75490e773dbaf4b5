"""Remind now (催办): chase whoever a task waits for, at most once an hour per task.

Who may: the requester (or their delegate while they are away), the instance's readers
(cc), and holders of the process's ``owner_role`` (the people who answer for the
process). Approvers are chased by the requester, not by each other. The last reminder
is kept on the task (``meta["reminded_at"]``, ``meta["reminded_by"]``), so a second one
within the hour is refused with the time left, whoever asks.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

from engine.errors import ActionNotAllowed, TooSoon
from engine.handover import open_task, step_for, task_entry, task_notice
from engine.operations import Remind
from engine.org import Actor
from engine.process import CompiledProcess
from engine.readers import readers, requester_identity
from engine.records import NoticeEvent, Outcome, Snapshot

REMIND_EVERY = timedelta(hours=1)


def may_remind(process: CompiledProcess, snapshot: Snapshot, actor: Actor) -> str | None | bool:
    """False if ``actor`` may not remind; else whom they act for (None: themself)."""
    speaks = requester_identity(snapshot, actor)
    if speaks is not False:
        return speaks
    if actor.user in readers(snapshot.meta):
        return None
    owner = process.spec.owner_role
    if owner is not None:
        if owner in actor.roles:
            return None
        return next((absent for absent, roles in actor.stands_in_for if owner in roles), False)
    return False


def remind(
    process: CompiledProcess, snapshot: Snapshot, event: Remind, actor: Actor, now: datetime
) -> Outcome:
    task = open_task(snapshot, event.task_id, "remind")
    refuse = partial(ActionNotAllowed, task.id, "remind")

    speaks = may_remind(process, snapshot, actor)
    if speaks is False:
        owner = f", holders of {process.spec.owner_role}" if process.spec.owner_role else ""
        raise refuse(
            f"only the requester ({snapshot.requester}), their delegate, the people it was "
            f"copied to{owner} may send a reminder; {actor.user} may not"
        )
    on_behalf_of = speaks if isinstance(speaks, str) else None
    last = task.meta.get("reminded_at")
    if last is not None:
        at = datetime.fromisoformat(last)
        if now < at + REMIND_EVERY:
            seconds = math.ceil((at + REMIND_EVERY - now).total_seconds())
            left = math.ceil(seconds / 60)
            local = at.astimezone(process.calendar.tz)
            by = task.meta.get("reminded_by", "someone")
            raise TooSoon(
                task.id,
                "remind",
                f"{by} reminded them at {local:%H:%M}; at most one reminder an hour: "
                f"try again in {left} min",
                retry_after=seconds,
            )
    comment = (event.comment or "").strip() or None
    step = step_for(process, snapshot, actor, now)
    meta = task.meta | {"reminded_at": now.isoformat(), "reminded_by": actor.user}
    step.update_task(replace(task, meta=meta))
    recipients = task.pending_recipients
    step.notify(
        NoticeEvent.remind_now,
        recipients,
        task.id,
        task_notice(process, task) | {"by": actor.user} | ({"comment": comment} if comment else {}),
    )
    step.log(
        task_entry(
            actor,
            "remind",
            task,
            on_behalf_of,
            {"to": list(recipients)} | ({"comment": comment} if comment else {}),
        )
    )
    return step.outcome(snapshot.row_version)
