"""Linked processes in the service: one action's outcome, and every outcome it leads to.

The engine only asks (``Outcome.spawns``, ``cancel_children``, ``tell_parent``; see
``engine.links``). :func:`expand` answers: it starts each child on the latest deployed
version of its process, tells a waiting parent that its child ended, and cancels the
children of a parent that ended or moved on; each of those steps may ask for more, up to
``MAX_DEPTH`` links away from the action. :func:`apply` then writes them all in one
transaction (``Store.apply_group``): the action happens with all its consequences or not
at all. A child that cannot start (its process not deployed, its input refused, its
requester unable to act) refuses the whole action with one line naming the child.

Every place that applies outcomes goes through :func:`apply` (``Workflow`` for people's
actions, ``service.timekeeper`` for timers and scheduled starts); an outcome with no
link is written as before (``Store.apply``, group commit and batches included).
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from engine.errors import Conflict, ShenpiError, WorkflowError
from engine.links import CancelChild, ChildFinished
from engine.org import Actor
from engine.records import ENDED, Outcome, Snapshot, SpawnRequest
from engine.runtime import Start, fire

if TYPE_CHECKING:
    from service.workflow import Workflow

MAX_DEPTH = 5  # parent -> child -> grandchild ...: deeper is a definition loop, refused
MAX_STEPS = 5_000  # outcomes one action may lead to (1000 children, their own links...)
RETRIES = 5  # a group that lost a race on a linked instance is computed again
SYSTEM = Actor("system", frozenset())


def expand(wf: Workflow, first: Outcome, now: datetime) -> list[Outcome]:
    """``first`` and every outcome its links lead to, in the order they happen.

    Each instance is read once, then carried along as the group leaves it (a parent
    told twice sees the first telling). Raises ``WorkflowError`` naming the child when
    one cannot start, or when the links go deeper than ``MAX_DEPTH``.
    """
    outcomes = [first]
    current: dict[str, Snapshot] = {}
    todo: deque[tuple[Outcome, int]] = deque([(first, 0)])
    _keep(current, first)
    while todo:
        out, depth = todo.popleft()
        if not out.linked:
            continue
        if depth >= MAX_DEPTH:
            raise WorkflowError(
                f"instance {out.snapshot.id}: linked processes nest more than {MAX_DEPTH} "
                "deep (a process that starts itself?); nothing was changed"
            )
        for nxt in _consequences(wf, out, current, now):
            outcomes.append(nxt)
            if len(outcomes) > MAX_STEPS:
                raise WorkflowError(
                    f"one action would change more than {MAX_STEPS} linked instances; "
                    "nothing was changed"
                )
            _keep(current, nxt)
            todo.append((nxt, depth + 1))
    return outcomes


def _keep(current: dict[str, Snapshot], out: Outcome) -> None:
    """The instance as the group leaves it, with the row version it will have."""
    rv = 0 if out.expected_row_version is None else out.expected_row_version + 1
    current[out.snapshot.id] = replace(out.snapshot, row_version=rv)


def _load(wf: Workflow, current: dict[str, Snapshot], instance_id: str) -> Snapshot:
    if instance_id not in current:
        current[instance_id] = wf.store.load_snapshot(instance_id)
    return current[instance_id]


def _consequences(
    wf: Workflow, out: Outcome, current: dict[str, Snapshot], now: datetime
) -> list[Outcome]:
    made: list[Outcome] = []
    for request in out.spawns:
        made.append(_start_child(wf, request, now))
        _keep(current, made[-1])
    if out.tell_parent is not None:
        child = out.snapshot
        parent = _load(wf, current, out.tell_parent)
        proc = wf.process(parent.process, parent.version)
        event = ChildFinished(child.id, child.status, child.outcome, child.variables)
        made.append(
            fire(
                proc,
                parent,
                event,
                SYSTEM,
                {},
                max(now, parent.updated_at),
                registers=wf.reader(proc),
            )
        )
        _keep(current, made[-1])
    for child_id in out.cancel_children:
        child = _load(wf, current, child_id)
        if child.status in ENDED:
            continue  # ended meanwhile: its own telling is on its way to the parent
        proc = wf.process(child.process, child.version)
        reason = f"parent {out.snapshot.id} {_why(out.snapshot)}"
        event = CancelChild(out.snapshot.id, reason)
        made.append(
            fire(
                proc,
                child,
                event,
                SYSTEM,
                {},
                max(now, child.updated_at),
                registers=wf.reader(proc),
            )
        )
        _keep(current, made[-1])
    return made


def _why(parent: Snapshot) -> str:
    if parent.status in ENDED:
        return f"ended ({parent.status}{', ' + parent.outcome if parent.outcome else ''})"
    return f"moved on to {parent.state}"


def _start_child(wf: Workflow, request: SpawnRequest, now: datetime) -> Outcome:
    """The child's first step, or a WorkflowError naming the child and why not."""
    what = f"cannot start linked process {request.process} ({request.child_id})"
    try:
        version = wf.latest_version(request.process)
        proc = wf.process(request.process, version)
        actor, absent = wf.org.on_behalf(request.requester, now)
        event = Start(request.child_id, version, on_behalf_of=absent, parent=request.parent)
        return fire(proc, None, event, actor, request.input, now, registers=wf.reader(proc))
    except (ShenpiError, ArithmeticError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WorkflowError(f"{what}: {reason}") from None


def apply(
    wf: Workflow,
    outcome: Outcome,
    now: datetime,
    *,
    fired_timer: str | None = None,
    schedule_run: tuple[str, datetime] | None = None,
) -> list[Outcome]:
    """Write ``outcome`` and everything it leads to, in one transaction; returns them.

    An outcome without links is written by ``Store.apply`` exactly as before.
    """
    if not outcome.linked:
        wf.store.apply(outcome, wf.clock(), fired_timer=fired_timer, schedule_run=schedule_run)
        return [outcome]
    group = expand(wf, outcome, now)
    wf.store.apply_group(group, wf.clock(), fired_timer=fired_timer, schedule_run=schedule_run)
    return group


def retrying(primary: str, attempt: int, exc: Conflict) -> bool:
    """Whether a group that lost a race should be computed again: only when the race
    was on a linked instance (another child finishing, say), never on the instance the
    person acted on (then they must look again), and only a few times."""
    return exc.instance_id != primary and attempt < RETRIES - 1
