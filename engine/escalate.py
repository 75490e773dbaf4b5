"""Who an escalation hands an overdue task to, keeping what was already signed.

Only the slots the task still waits for change: a countersignature already given stays,
with its slot, so a 会签 that three of four people signed waits for one replacement, not
for four new signatures. The new assignee is a role, a named user, or a person relative
to the task: the manager (``engine.org.Org.manager``) of each person the task waits for,
or of the requester. Unless the owner says ``keep_original: false``, the people awaited
may still act beside the new assignee (in a 会签 the two share one slot: either signs).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from engine.model import Escalation, TaskMode
from engine.org import Org
from engine.records import Snapshot, TaskRecord
from engine.slots import people, role, user_slot


@dataclass(frozen=True)
class Reassigned:
    """The task after reassignment, the new slots, and why (for the audit)."""

    task: TaskRecord
    targets: tuple[str, ...]
    why: tuple[str, ...]


def reassign(
    org: Org | None, snapshot: Snapshot, task: TaskRecord, esc: Escalation, now: datetime
) -> Reassigned:
    """``task`` with every awaited slot handed to ``esc``'s target (or joined by it)."""
    target = esc.target
    assert target is not None
    pending = task.pending_roles
    claimed = task.claimed_by
    new: dict[str, str] = {}
    targets: dict[str, None] = {}
    why: list[str] = []
    taken = set(task.roles)  # a countersign's slots must stay as many, and distinct
    for slot in pending:
        if target.role is not None:
            to: str | None = target.role
        elif target.user is not None:
            to = user_slot(target.user)
        else:
            to = _managers(org, snapshot, slot, claimed, target.manager_of, why)
        if to is None:
            continue  # nobody to hand it to: the slot stays as it is (audited)
        if task.mode != TaskMode.any:
            moved_to = to if not esc.keep_original else _joined(org, slot, to, now)
            if moved_to != slot and moved_to in taken:
                # two places of a 会签 handed to one (or to one that already signed) would
                # let fewer people decide than the owner asked for: this slot stays
                why.append(f"{slot} kept: {moved_to} already has a place in this countersign")
                continue
            taken.add(moved_to)
            new[slot] = moved_to
        targets[to] = None
    if task.mode == TaskMode.any:
        kept = task.roles if esc.keep_original else ()
        roles = tuple(dict.fromkeys((*kept, *targets)))
    else:
        roles = tuple(dict.fromkeys(new.get(s, s) for s in task.roles))
    meta = dict(task.meta)
    if targets:
        meta.pop("claimed_by", None)  # the claim was the awaited person's; it moves on
    moved = replace(task, roles=roles or task.roles, meta=meta)
    return Reassigned(moved, tuple(targets), tuple(why))


def _managers(
    org: Org | None,
    snapshot: Snapshot,
    slot: str,
    claimed: str | None,
    of: str | None,
    why: list[str],
) -> str | None:
    """The slot of the managers of whoever ``slot`` waits for (or of the requester)."""
    if org is None:
        why.append("no org chart to find managers in")
        return None
    if of == "requester":
        awaited = [snapshot.requester]
    elif claimed is not None:
        awaited = [claimed]
    else:
        awaited = list(people(slot)) or org.holders(slot)
    found: dict[str, None] = {}
    for person in awaited:
        boss = org.manager(person) if person in org.users else None
        if boss is None:
            why.append(f"{person} has no manager in org.yaml")
        else:
            found[boss] = None
            why.append(org.manager_why(person) + f": {boss}")
    return user_slot(*found) if found else None


def _joined(org: Org | None, slot: str, to: str, now: datetime) -> str:
    """One slot either the awaited people or the new assignee may fill (a countersign slot
    must stay one slot). Roles are read into their holders as of now."""
    if slot == to:
        return slot

    def persons(s: str) -> list[str]:
        named = people(s)
        if named:
            return list(named)
        r = role(s)
        return org.holders(r, now=now) if org is not None and r is not None else []

    both = [*persons(slot), *persons(to)]
    return user_slot(*both) if both else to
