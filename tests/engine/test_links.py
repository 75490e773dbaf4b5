"""Linked processes in the pure engine: what a step asks of other instances, and what the
parent does when they end (engine/links.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from engine.errors import DefinitionError, ExpressionError, WorkflowError
from engine.links import CancelChild, ChildFinished
from engine.operations import Withdraw
from engine.org import Org
from engine.process import CompiledProcess
from engine.records import InstanceStatus, Outcome, Snapshot, TaskStatus
from engine.runtime import SYSTEM, Act, Start, TimerFired, fire

from .conftest import NOW, build

LATER = NOW + timedelta(hours=1)

PARENT = """
process: parent
title: Parent
variables:
  note: {type: string}
  customers: {type: string}
  owner: {type: user}
  verdict: {type: string}
start: {accept: [note, customers, owner], to: review}
states:
  review:
    spawn:
      - process: child
        as: requester
        set: {topic: "'from parent: ' ~ note"}
        when: "note is not none"
      - process: child
        as: {variable: owner}
        set: {topic: "'kept'"}
        when: "owner is not none"
        on_parent_end: cancel
    task: {role: vp, actions: {round: {to: grading}, close: {to: done}}}
  grading:
    spawn:
      - process: child
        for_each: "(customers or '').split(',') if customers else []"
        when: "item != 'X'"
        set: {topic: "item"}
        wait: true
    route:
      - when: "children | rejectattr('outcome', 'equalto', 'ok') | list | length == 0"
        to: all_ok
      - to: some_failed
  all_ok:
    set: {verdict: "'ok'"}
    route: [{to: done}]
  some_failed:
    set: {verdict: "'failed'"}
    route: [{to: done}]
  done: {final: true}
"""


@pytest.fixture
def proc(org: Org) -> CompiledProcess:
    return build(PARENT, org)


def _apply(out: Outcome) -> Snapshot:
    """The snapshot as storage would hand it back for the next step."""
    rv = 0 if out.expected_row_version is None else out.expected_row_version + 1
    return replace(out.snapshot, row_version=rv)


def start(proc: CompiledProcess, org: Org, **data: str) -> Outcome:
    return fire(proc, None, Start("p1"), org.actor("ann"), data, NOW)


def to_grading(proc: CompiledProcess, org: Org, customers: str) -> Outcome:
    snap = _apply(start(proc, org, customers=customers))
    return fire(proc, snap, Act(snap.tasks[0].id, "round"), org.actor("bob"), {}, LATER)


def test_entering_a_state_asks_for_children_with_mapped_input(
    proc: CompiledProcess, org: Org
) -> None:
    out = start(proc, org, note="n1", owner="cat")
    first, second = out.spawns
    assert (first.child_id, first.process, first.requester) == ("p1.1", "child", "ann")
    assert first.input == {"topic": "from parent: n1"}
    assert (first.wait, first.on_parent_end) == (False, "keep")
    assert first.parent == {"id": "p1", "process": "parent", "state": "review"}
    assert (second.child_id, second.requester, second.on_parent_end) == ("p1.2", "cat", "cancel")
    children = out.snapshot.meta["children"]
    assert [(c["id"], c["status"]) for c in children] == [("p1.1", "active"), ("p1.2", "active")]
    assert [s["id"] for s in out.audit[0].data["spawned"]] == ["p1.1", "p1.2"]
    assert out.snapshot.state == "review" and out.snapshot.tasks  # the task opens as usual


def test_when_filters_and_nothing_is_asked_without_cause(proc: CompiledProcess, org: Org) -> None:
    out = start(proc, org)
    assert out.spawns == () and "children" not in out.snapshot.meta and not out.linked


def test_for_each_one_child_per_item_and_the_state_holds(proc: CompiledProcess, org: Org) -> None:
    out = to_grading(proc, org, "a,X,b")
    assert [(s.child_id, s.input["topic"], s.wait) for s in out.spawns] == [
        ("p1.1", "a", True),
        ("p1.2", "b", True),
    ]
    assert all(s.on_parent_end == "cancel" for s in out.spawns)  # wait: cancel by default
    assert out.snapshot.state == "grading" and out.snapshot.status == "active"
    assert out.snapshot.meta["waiting"] == {"state": "grading", "ids": ["p1.1", "p1.2"]}


def test_an_empty_list_routes_at_once_with_no_children(proc: CompiledProcess, org: Org) -> None:
    out = to_grading(proc, org, "")
    assert out.spawns == ()
    assert (out.snapshot.status, out.snapshot.variables["verdict"]) == ("completed", "ok")


def test_the_last_waited_child_routes_and_children_are_visible(
    proc: CompiledProcess, org: Org
) -> None:
    snap = _apply(to_grading(proc, org, "a,b"))
    one = fire(proc, snap, ChildFinished("p1.1", "completed", "ok", {"x": "1"}), None, {}, LATER)  # type: ignore[arg-type]
    assert one.snapshot.state == "grading" and one.audit[0].data["still_running"] == 1
    snap = _apply(one)
    two = fire(proc, snap, ChildFinished("p1.2", "completed", "ok", {}), None, {}, LATER)  # type: ignore[arg-type]
    assert (two.snapshot.status, two.snapshot.variables["verdict"]) == ("completed", "ok")
    assert "waiting" not in two.snapshot.meta
    entry = two.snapshot.meta["children"][0]
    assert (entry["status"], entry["outcome"], entry["variables"]) == (
        "completed",
        "ok",
        {"x": "1"},
    )
    assert two.cancel_children == ()  # all finished: nobody to cancel
    # told twice (a retry): recorded, nothing moves
    again = fire(proc, _apply(two), ChildFinished("p1.2", "completed", "ok", {}), None, {}, LATER)  # type: ignore[arg-type]
    assert again.audit[0].data["ignored"] and again.snapshot.state == "done"


def test_a_withdrawn_child_counts_as_finished_and_routes_elsewhere(
    proc: CompiledProcess, org: Org
) -> None:
    snap = _apply(to_grading(proc, org, "a"))
    out = fire(proc, snap, ChildFinished("p1.1", "withdrawn", "withdrawn", {}), None, {}, LATER)  # type: ignore[arg-type]
    assert out.snapshot.variables["verdict"] == "failed"


def test_a_withdrawn_parent_cancels_only_the_children_declared_so(
    proc: CompiledProcess, org: Org
) -> None:
    snap = _apply(start(proc, org, note="n", owner="cat"))
    out = fire(proc, snap, Withdraw(), org.actor("ann"), {}, LATER)
    assert out.cancel_children == ("p1.2",)  # p1.1 said keep
    statuses = {c["id"]: c["status"] for c in out.snapshot.meta["children"]}
    assert statuses == {"p1.1": "active", "p1.2": "cancelled"}
    assert out.audit[-1].action == "children_cancelled"


def test_a_completed_parent_cancels_too(proc: CompiledProcess, org: Org) -> None:
    snap = _apply(start(proc, org, owner="cat"))
    out = fire(proc, snap, Act(snap.tasks[0].id, "close"), org.actor("bob"), {}, LATER)
    assert out.snapshot.status == "completed" and out.cancel_children == ("p1.1",)


def test_a_child_that_ends_tells_its_parent_and_a_cancelled_one_does_not(
    proc: CompiledProcess, org: Org
) -> None:
    child = build(CHILD, org)
    parent = {"id": "p1", "process": "parent", "state": "grading"}
    out = fire(child, None, Start("p1.1", parent=parent), org.actor("ann"), {"topic": "t"}, NOW)
    assert out.snapshot.meta["parent"] == parent and out.tell_parent is None
    snap = _apply(out)
    done = fire(child, snap, Act(snap.tasks[0].id, "ok"), org.actor("bob"), {}, LATER)
    assert done.tell_parent == "p1"
    gone = fire(child, snap, CancelChild("p1", "parent withdrawn"), None, {}, LATER)  # type: ignore[arg-type]
    assert (gone.snapshot.status, gone.snapshot.outcome) == (InstanceStatus.cancelled, "cancelled")
    assert gone.changed[0].status == TaskStatus.cancelled and gone.tell_parent is None
    assert gone.audit[0].data["parent"] == "p1" and gone.audit[0].actor == SYSTEM
    assert gone.notices[0].event == "cancelled" and "user:ann" in gone.notices[0].recipients
    assert gone.notices[0].data["parent"] == "p1" and "role:vp" in gone.notices[0].recipients


def test_an_escalation_out_of_the_waiting_state_cancels_its_children(org: Org) -> None:
    proc = build(ESCALATING, org)
    out = fire(proc, None, Start("p1"), org.actor("ann"), {}, NOW)
    snap = _apply(out)
    [esc] = [t for t in out.timers_set if t.kind == "escalation"]
    moved = fire(proc, snap, TimerFired(esc), None, {}, esc.due_at)  # type: ignore[arg-type]
    assert moved.snapshot.state == "late" and moved.cancel_children == ("p1.1",)
    assert "waiting" not in moved.snapshot.meta


def test_for_each_is_bounded_and_must_be_a_list(org: Org) -> None:
    big = PARENT.replace("(customers or '').split(',') if customers else []", "range(1001) | list")
    proc = build(big, org)
    snap = _apply(fire(proc, None, Start("p1"), org.actor("ann"), {}, NOW))
    with pytest.raises(WorkflowError, match="1001 children in one step; at most 1000"):
        fire(proc, snap, Act(snap.tasks[0].id, "round"), org.actor("bob"), {}, LATER)
    proc = build(PARENT.replace("(customers or '').split(',') if customers else []", "'abc'"), org)
    snap = _apply(fire(proc, None, Start("p1"), org.actor("ann"), {}, NOW))
    with pytest.raises(ExpressionError, match="for_each must give a list, got str"):
        fire(proc, snap, Act(snap.tasks[0].id, "round"), org.actor("bob"), {}, LATER)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            (
                "        wait: true\n    route:",
                "        wait: true\n    task: {role: vp, actions: {x: {to: done}}}\n    route:",
            ),
            "exactly one of",
        ),
        (
            (
                "  done: {final: true}",
                "  done: {final: true, spawn: [{process: child, on_parent_end: cancel}]}",
            ),
            "final state's spawn cannot cancel",
        ),
        (
            ("as: {variable: owner}", "as: {variable: note}"),
            "'note' is not a variable of type user",
        ),
        (("as: requester", "as: {user: nobody}"), "unknown user 'nobody'"),
        (("'kept'", "kept_name"), "unknown name(s): kept_name"),
        (("set: {topic: \"'kept'\"}", 'set: {topic: "item"}'), "unknown name(s): item"),
        (
            ("- process: child\n        for_each", "- process: Child\n        for_each"),
            "should match pattern",
        ),
        (
            (
                "  all_ok:\n    set: {verdict: \"'ok'\"}",
                '  all_ok:\n    set: {verdict: "children"}',
            ),
            "unknown name(s): children",
        ),
    ],
)
def test_validation(org: Org, edit: tuple[str, str], message: str) -> None:
    text = PARENT.replace(*edit)
    assert text != PARENT
    with pytest.raises(DefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(text, org)


def test_a_task_state_may_not_wait(org: Org) -> None:
    text = PARENT.replace(
        "    spawn:\n      - process: child\n        as: requester",
        "    spawn:\n      - process: child\n        wait: true\n        as: requester",
    )
    with pytest.raises(DefinitionError, match="needs a 'route' state"):
        build(text, org)


CHILD = """
process: child
title: Child
variables:
  topic: {type: string}
start: {accept: [topic], to: work}
states:
  work:
    task: {role: vp, actions: {ok: {to: ok}, fail: {to: failed}}}
  ok: {final: true, outcome: ok}
  failed: {final: true, outcome: failed}
"""

ESCALATING = """
process: parent
title: Parent waiting with an instance deadline
deadline:
  days: 2
  until: [done]
  escalations: [{goto: late}]
start: {to: waiting}
states:
  waiting:
    spawn: [{process: child, wait: true}]
    route: [{to: done}]
  late: {final: true, outcome: late}
  done: {final: true}
"""
