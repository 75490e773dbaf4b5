"""Signers in groups: the task's current group decides, then the next queued one (加签).

A task waits for one group at a time: its ``roles`` (slots) and ``mode`` with the
``signoffs`` given so far. Adding signers before someone puts a group in front and queues
that person's own turn after it; adding after queues a group behind. When the current
group has agreed, the next group comes up on the same task (same id, same deadline), so
the task list, links and the audit trail follow one task, and signatures already given
are never dropped: they move to ``meta["signed"]``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine.records import Signoff, TaskRecord


def group(
    slots: tuple[str, ...], mode: str, kind: str, signoffs: tuple[Signoff, ...] = ()
) -> dict[str, Any]:
    """A queued group as stored in ``meta["queue"]``."""
    return {
        "roles": list(slots),
        "mode": mode,
        "kind": kind,
        "signoffs": [s.to_json() for s in signoffs],
    }


def next_group(task: TaskRecord) -> TaskRecord:
    """``task`` with its current (agreed) group done and the first queued group current.

    A claim belongs to the group it was made in, so it ends with it.
    """
    head, *rest = task.queue
    signed = [*task.meta.get("signed", ()), *(s.to_json() for s in task.signoffs)]
    meta = {k: v for k, v in task.meta.items() if k != "claimed_by"}
    meta |= {"queue": rest, "signed": signed}
    if not rest:
        del meta["queue"]
    return replace(
        task,
        roles=tuple(head["roles"]),
        mode=head["mode"],
        signoffs=tuple(Signoff.from_json(s) for s in head.get("signoffs", ())),
        meta=meta,
    )


def all_signoffs(task: TaskRecord) -> tuple[Signoff, ...]:
    """Every signature the task has collected, earlier groups first (审批意见 per person)."""
    earlier = tuple(Signoff.from_json(s) for s in task.meta.get("signed", ()))
    return earlier + task.signoffs
