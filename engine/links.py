"""Linked processes: a state starts other processes, may wait for them, and cancels them.

Pure, as the rest of the engine: a step only *asks* for children (``Outcome.spawns``), to
be cancelled (``Outcome.cancel_children``), or for its parent to be told it ended
(``Outcome.tell_parent``); ``service.links`` turns those into the children's and the
parent's own outcomes and applies them all in one transaction.

What each side keeps in its ``meta``:

- the child: ``parent`` ``{id, process, state}`` (also the ``instances.parent_id`` column);
- the parent: ``children``, one entry per child ever spawned, ``{id, process, state, wait,
  on_parent_end, status, outcome}`` (and ``variables`` once a waited child finished), and
  while a route state holds for its children, ``waiting`` ``{state, ids}``.

Child ids are ``<parent id>.<n>``: derived from the parent, so the same step gives the
same ids (the engine picks no random ids) and a child's id names its family.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.errors import ExpressionError, WorkflowError
from engine.model import MAX_SPAWN, SpawnAs, SpawnSpec
from engine.process import ROUTE_TRIGGER, CompiledProcess
from engine.records import (
    ENDED,
    InstanceStatus,
    NoticeEvent,
    Outcome,
    Snapshot,
    SpawnRequest,
)
from engine.values import encode

if TYPE_CHECKING:
    from engine.steps import Step

SYSTEM = "system"
CANCELLED = "cancelled"  # the outcome of a child cancelled with its parent


@dataclass(frozen=True)
class ChildFinished:
    """Fired on a parent by the service: its child ``child_id`` ended (completed,
    withdrawn or cancelled) with this outcome and these (stored, JSON) variables."""

    child_id: str
    status: str
    outcome: str | None
    variables: Mapping[str, Any]


@dataclass(frozen=True)
class CancelChild:
    """Fired on a child by the service: its parent ended or left the state that waited
    for it, and the spawn said ``on_parent_end: cancel``."""

    parent_id: str
    reason: str


LinkEvent = ChildFinished | CancelChild


# ---------------------------------------------------------------------- on entering a state


def spawn(step: Step, sname: str, record: dict[str, Any]) -> bool:
    """Ask for the children of state ``sname`` (its ``spawn:``); True when the state
    holds for waited children (a route state that must not route yet)."""
    state = step.process.spec.states[sname]
    children = list(step.meta("children") or ())
    waited: list[str] = []
    made: list[SpawnRequest] = []
    for i, spec in enumerate(state.spawn):
        key = f"{sname}.spawn.{i}"
        for item in _items(step, key, spec, len(made)):
            extra = {"item": item} if spec.for_each is not None else {}
            if spec.when is not None and not step.process.expr(f"{key}.when").test(
                step.ctx() | extra
            ):
                continue
            values = {
                name: encode(step.process.expr(f"{key}.set.{name}").evaluate(step.ctx() | extra))
                for name in spec.set
            }
            child_id = f"{step.base.id}.{len(children) + 1}"
            end = "cancel" if spec.cancels else "keep"
            request = SpawnRequest(
                child_id=child_id,
                process=spec.process,
                requester=_requester(step, key, spec),
                input={k: v for k, v in values.items() if v is not None},
                wait=spec.wait,
                on_parent_end=end,
                parent_id=step.base.id,
                parent_process=step.process.name,
                parent_state=sname,
            )
            made.append(request)
            children.append(
                {
                    "id": child_id,
                    "process": spec.process,
                    "state": sname,
                    "wait": spec.wait,
                    "on_parent_end": end,
                    "status": InstanceStatus.active.value,
                    "outcome": None,
                }
            )
            if spec.wait:
                waited.append(child_id)
    if not state.spawn:
        return False
    step.spawns.extend(made)
    if made:
        step.set_meta("children", children)
        record.setdefault("data", {})["spawned"] = [
            {"id": r.child_id, "process": r.process, "requester": r.requester} for r in made
        ]
    if waited:
        step.set_meta("waiting", {"state": sname, "ids": waited})
        record["data"]["waiting_for"] = waited
        return True
    if state.waits:
        step.extra["children"] = []  # nobody to wait for: the route sees no children
    return False


def _items(step: Step, key: str, spec: SpawnSpec, made: int) -> list[Any]:
    """The items of ``for_each`` (one ``None`` without it), within the per-step limit."""
    if spec.for_each is None:
        items: list[Any] = [None]
    else:
        expr = step.process.expr(f"{key}.for_each")
        value = expr.evaluate(step.ctx())
        if value is None:
            value = []
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
            raise ExpressionError(
                expr.source, f"for_each must give a list, got {type(value).__name__}", expr.where
            )
        items = list(value)
    if made + len(items) > MAX_SPAWN:
        raise WorkflowError(
            f"state {key.split('.')[0]!r}: spawn of {spec.process} would start "
            f"{made + len(items)} children in one step; at most {MAX_SPAWN} are allowed"
        )
    return items


def _requester(step: Step, key: str, spec: SpawnSpec) -> str:
    who = spec.requester
    if who == "requester":
        return step.base.requester
    if who == "actor":
        # a timer or a route the system took has no person: the parent's requester asks
        return step.base.requester if step.actor == SYSTEM else step.actor
    assert isinstance(who, SpawnAs)
    if who.user is not None:
        return who.user
    assert who.variable is not None
    value = step.values.get(who.variable)
    if not value:
        raise WorkflowError(
            f"{key}: 'as: {{variable: {who.variable}}}' names nobody: {who.variable} is empty"
        )
    return str(value)


# ---------------------------------------------------------------------- leaving, ending


def leave(step: Step) -> None:
    """The instance moves on from where it is: a round of waiting there is over."""
    if step.meta("waiting") is not None:
        step.dropped_rounds.append(step.meta("waiting"))
        step.set_meta("waiting", None)


def settle(step: Step) -> None:
    """Before the outcome is frozen: which children to cancel and whether to tell the
    parent. A parent that ended cancels every running child spawned to be cancelled;
    one that left a waiting state, the waited children of that round still running.
    Children spawned by this very step are never cancelled by it."""
    ended = step.status != InstanceStatus.active and step.base.status == InstanceStatus.active
    if ended and step.meta("parent"):
        step.tell_parent = step.meta("parent")["id"]
    children = step.meta("children")
    if not children:
        return
    new = {r.child_id for r in step.spawns}
    rounds = {i for r in step.dropped_rounds for i in r.get("ids", ())}
    if ended:
        rounds = {c["id"] for c in children}
        waiting = step.meta("waiting")
        if waiting is not None:
            step.set_meta("waiting", None)
    cancel = [
        c["id"]
        for c in children
        if c["id"] in rounds
        and c["id"] not in new
        and c["status"] == InstanceStatus.active
        and c.get("on_parent_end") == "cancel"
    ]
    if not cancel:
        return
    step.cancel_children.extend(cancel)
    gone = set(cancel)
    step.set_meta(
        "children",
        [
            c | {"status": CANCELLED, "outcome": CANCELLED} if c["id"] in gone else c
            for c in children
        ],
    )
    step.note_cancelled(cancel)


# ---------------------------------------------------------------------- the events


def child_finished(
    process: CompiledProcess, snapshot: Snapshot, event: ChildFinished, now: datetime
) -> Outcome:
    """Record that a child ended; if it was the last waited child of the state the
    parent holds in, take that state's route (its expressions see ``children``)."""
    from engine.context import decode_variables
    from engine.steps import Step

    step = Step(process, snapshot, decode_variables(process, snapshot.variables), now, SYSTEM)
    children = [dict(c) for c in snapshot.meta.get("children", ())]
    entry = next((c for c in children if c["id"] == event.child_id), None)
    record: dict[str, Any] = {
        "actor": SYSTEM,
        "action": "child_finished",
        "from_state": snapshot.state,
        "to_state": snapshot.state,
        "data": {"child": event.child_id, "status": event.status, "outcome": event.outcome},
    }
    if entry is None or entry["status"] in ENDED:
        # not ours, or already recorded (cancelled by us): nothing changes but the log
        record["data"]["ignored"] = "not a running child of this instance"
        step.log(record)
        return step.outcome(snapshot.row_version)
    entry.update(status=event.status, outcome=event.outcome)
    if entry.get("wait"):
        entry["variables"] = dict(event.variables)
    record["data"]["process"] = entry["process"]
    step.set_meta("children", children)
    waiting = snapshot.meta.get("waiting")
    holds = (
        snapshot.status == InstanceStatus.active
        and waiting is not None
        and waiting.get("state") == snapshot.state
        and event.child_id in waiting.get("ids", ())
    )
    if holds:
        ids = list(waiting["ids"])
        round_ = set(ids)
        mine = [c for c in children if c["id"] in round_]
        running = sum(1 for c in mine if c["status"] not in ENDED)
        if running:
            record["data"]["still_running"] = running  # a count: a round may have 1000
        else:
            step.extra["children"] = [_visible(c) for c in mine]
            target = step.trigger(snapshot.state, ROUTE_TRIGGER)
            if target is None:  # pragma: no cover - validation demands an otherwise branch
                raise ExpressionError(snapshot.state, "no route branch matched")
            step.extra.clear()
            record["data"]["all_finished"] = ids
            step.enter(target, record)
            return step.outcome(snapshot.row_version)
    step.log(record)
    return step.outcome(snapshot.row_version)


def _visible(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A child as a waiting state's route sees it."""
    return {
        "id": entry["id"],
        "process": entry["process"],
        "status": entry["status"],
        "outcome": entry.get("outcome"),
        "variables": dict(entry.get("variables") or {}),
    }


def cancel_child(
    process: CompiledProcess, snapshot: Snapshot, event: CancelChild, now: datetime
) -> Outcome:
    """Cancel a running child because its parent ended or moved on: its open tasks are
    cancelled, its timers too, status ``cancelled``; whoever its tasks waited for is told.
    The parent has already recorded it, so the parent is not told back."""
    from engine.context import decode_variables
    from engine.steps import Step

    step = Step(process, snapshot, decode_variables(process, snapshot.variables), now, SYSTEM)
    if snapshot.status != InstanceStatus.active:
        step.log(
            {
                "actor": SYSTEM,
                "action": "cancel_skipped",
                "from_state": snapshot.state,
                "to_state": snapshot.state,
                "data": {"parent": event.parent_id, "status": snapshot.status},
            }
        )
        return step.outcome(snapshot.row_version)
    from engine.withdrawal import end_unanswered

    told, closed = end_unanswered(step, InstanceStatus.cancelled, CANCELLED, SYSTEM)
    leave(step)
    told[f"user:{snapshot.requester}"] = None
    data = {"state": snapshot.state, "by": SYSTEM, "parent": event.parent_id}
    step.notify(NoticeEvent.cancelled, tuple(told), None, data | {"comment": event.reason})
    step.log(
        {
            "actor": SYSTEM,
            "action": "cancelled",
            "from_state": snapshot.state,
            "to_state": snapshot.state,
            "data": {
                "outcome": CANCELLED,
                "parent": event.parent_id,
                "reason": event.reason,
                "cancelled_tasks": closed,
            },
        }
    )
    out = step.outcome(snapshot.row_version)
    return replace(out, tell_parent=None)


def fire_link(
    process: CompiledProcess, snapshot: Snapshot, event: LinkEvent, now: datetime
) -> Outcome:
    """``engine.runtime.fire`` for the link events (always by the system)."""
    if isinstance(event, ChildFinished):
        return child_finished(process, snapshot, event, now)
    return cancel_child(process, snapshot, event, now)
