"""Readers (抄送 cc): who may copy, and the definition's cc on entering and completing."""

from __future__ import annotations

import pytest

from engine.errors import DefinitionError, InstanceOperationNotAllowed
from engine.operations import Cc
from engine.org import Org
from engine.records import NoticeEvent
from engine.runtime import Act, Start, fire

from .conftest import NOW, build
from .purchase import BUY, LATER, started


def test_the_requester_copies_people_who_are_recorded_and_told(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    out = fire(proc, snap, Cc(("fay", "gus"), "fyi"), org.actor("ann"), {}, LATER)
    assert out.snapshot.meta["cc"] == [
        {"user": "fay", "by": "ann", "at": LATER.isoformat()},
        {"user": "gus", "by": "ann", "at": LATER.isoformat()},
    ]
    assert out.snapshot.meta["sla"] == snap.meta["sla"]  # the clock is kept
    [notice] = out.notices
    assert (notice.event, notice.recipients) == (NoticeEvent.cc, ("user:fay", "user:gus"))
    assert notice.data["comment"] == "fyi" and notice.data["cc_by"] == "ann"
    assert out.audit[0].action == "cc" and out.audit[0].data["to"] == ["fay", "gus"]
    again = fire(proc, out.snapshot, Cc(("fay", "eve")), org.actor("ann"), {}, LATER)
    assert again.audit[0].data == {"to": ["eve"], "already": ["fay"]}
    with pytest.raises(InstanceOperationNotAllowed, match="already receive"):
        fire(proc, out.snapshot, Cc(("fay",)), org.actor("ann"), {}, LATER)


def test_who_may_copy(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    fire(proc, snap, Cc(("fay",)), org.actor("cat"), {}, LATER)  # may act now (vp)
    with pytest.raises(InstanceOperationNotAllowed, match="fay is none of them"):
        fire(proc, snap, Cc(("gus",)), org.actor("fay"), {}, LATER)
    moved = fire(proc, snap, Act(snap.tasks[0].id, "approve"), org.actor("bob"), {}, LATER)
    fire(proc, moved.snapshot, Cc(("gus",)), org.actor("bob"), {}, LATER)  # acted before


def test_copying_refuses_unknown_people_and_the_requester(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    with pytest.raises(InstanceOperationNotAllowed, match="unknown user 'zed'"):
        fire(proc, snap, Cc(("zed",)), org.actor("ann"), {}, LATER)
    with pytest.raises(InstanceOperationNotAllowed, match="ann is the requester"):
        fire(proc, snap, Cc(("ann",)), org.actor("ann"), {}, LATER)


def test_the_definition_copies_on_entering_a_state_and_on_completion(org: Org) -> None:
    proc = build(BUY, org)
    snap = fire(
        proc, None, Start("i1", 1), org.actor("ann"), {"amount": "5", "buyer": "eve"}, NOW
    ).snapshot
    board = fire(proc, snap, Act(snap.tasks[0].id, "approve"), org.actor("bob"), {}, LATER)
    assert [r["user"] for r in board.snapshot.meta["cc"]] == ["eve"]
    assert board.snapshot.meta["cc"][0]["by"] == "system"
    assert board.snapshot.meta["cc"][0]["state"] == "board"
    assert board.audit[0].data["cc"] == ["eve"]
    cc = [n for n in board.notices if n.event == NoticeEvent.cc]
    assert [n.recipients for n in cc] == [("user:eve",)]
    task = board.snapshot.tasks[0]
    signed = fire(proc, board.snapshot, Act(task.id, "approve"), org.actor("fay"), {}, LATER)
    done = fire(proc, signed.snapshot, Act(task.id, "approve"), org.actor("eve"), {}, LATER)
    assert done.snapshot.outcome == "approved"
    assert [r["user"] for r in done.snapshot.meta["cc"]] == ["eve", "gus"]  # role head


def test_cc_yaml_is_checked(org: Org) -> None:
    bad = BUY.replace("cc: [{role: head}]", "cc: [{role: nobody}, {variable: amount}]")
    with pytest.raises(DefinitionError) as err:
        build(bad, org)
    text = str(err.value)
    assert "unknown role 'nobody'" in text and "'amount' is not a variable of type user" in text
    with pytest.raises(DefinitionError, match="exactly one of 'user', 'role' or 'variable'"):
        build(BUY.replace("cc: [{role: head}]", "cc: [{role: head, user: ann}]"), org)
