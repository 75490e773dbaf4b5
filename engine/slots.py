"""Who a task waits for: its slots.

A task used to wait for roles only. Now a slot is either a role id (any holder of the
role may fill it, as before: ``finance``) or one or more named people (``user:li.qiang``,
or ``user:he.jing,xu.ming`` when any one of them may fill it). Slots are plain strings
so that stored tasks, the ``task_roles`` lookup rows and notice recipients keep one
shape; a role id can never contain ``:``, so the two kinds cannot be mistaken.

Mode ``any`` needs one person for any slot; ``all`` one person per slot; ``sequence``
one per slot in order. Resolving an assignee rule into slots happens when a task opens
(``engine.assignees``); from then on the slots are facts, not rules.
"""

from __future__ import annotations

from collections.abc import Iterable

USER = "user:"


def user_slot(*users: str) -> str:
    """The slot any one of ``users`` may fill (order kept, duplicates dropped)."""
    if not users:
        raise ValueError("a person slot needs at least one user")
    return USER + ",".join(dict.fromkeys(users))


def is_person(slot: str) -> bool:
    return slot.startswith(USER)


def people(slot: str) -> tuple[str, ...]:
    """The users named by a person slot; () for a role slot."""
    return tuple(slot[len(USER) :].split(",")) if slot.startswith(USER) else ()


def role(slot: str) -> str | None:
    """The role of a role slot; None for a person slot."""
    return None if slot.startswith(USER) else slot


def lookup_keys(slots: Iterable[str]) -> tuple[str, ...]:
    """What ``task_roles`` stores for these slots: role ids and ``user:<id>`` per person, so
    "what may I act on" is one index range scan per role I hold plus one for my name."""
    keys: dict[str, None] = {}
    for slot in slots:
        if slot.startswith(USER):
            keys.update((USER + u, None) for u in people(slot))
        else:
            keys[slot] = None
    return tuple(keys)


def recipients(slots: Iterable[str]) -> tuple[str, ...]:
    """Notice recipients for these slots: ``role:<id>`` or ``user:<id>``."""
    out: dict[str, None] = {}
    for slot in slots:
        if slot.startswith(USER):
            out.update((USER + u, None) for u in people(slot))
        else:
            out[f"role:{slot}"] = None
    return tuple(out)


def describe(slot: str) -> str:
    """A slot in words for messages: ``role finance`` or ``li.qiang or he.jing``."""
    if slot.startswith(USER):
        return " or ".join(people(slot))
    return f"role {slot}"
