"""Withdraw (撤回): the requester takes back an active request; the pure rules."""

from __future__ import annotations

import pytest

from engine.errors import DefinitionError, InstanceClosed, InstanceOperationNotAllowed
from engine.operations import Withdraw
from engine.org import Org
from engine.records import InstanceStatus, NoticeEvent, TaskStatus
from engine.runtime import Act, fire

from .conftest import build
from .purchase import BUY, LATER, started


def test_the_requester_withdraws_cancels_tasks_timers_and_tells_the_approvers(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    out = fire(proc, snap, Withdraw("changed my mind"), org.actor("ann"), {}, LATER)
    assert (out.snapshot.status, out.snapshot.outcome) == (InstanceStatus.withdrawn, "withdrawn")
    assert out.snapshot.state == "vp_review" and out.snapshot.tasks == ()
    [task] = out.changed
    assert (task.status, task.decision, task.decided_by) == (
        TaskStatus.cancelled,
        "withdrawn",
        "ann",
    )
    assert set(out.timers_cancel_states) == {"vp_review", "@sla"}
    assert out.snapshot.sla is not None and out.snapshot.sla.stopped_at == LATER
    [notice] = out.notices
    assert notice.event == NoticeEvent.withdrawn and notice.recipients == ("role:vp",)
    assert notice.data["comment"] == "changed my mind" and notice.data["by"] == "ann"
    [entry] = out.audit
    assert (entry.action, entry.actor, entry.on_behalf_of) == ("withdraw", "ann", None)
    assert entry.data["cancelled_tasks"] == [snap.tasks[0].id]


def test_someone_else_may_not_withdraw(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    with pytest.raises(InstanceOperationNotAllowed, match="only the requester .ann."):
        fire(proc, snap, Withdraw(), org.actor("bob"), {}, LATER)


def test_the_requesters_delegate_withdraws_on_their_behalf_and_they_are_told(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org, "eve", on_behalf_of="dan")  # dan is away; eve stands in
    assert snap.requester == "dan"
    out = fire(proc, snap, Withdraw(), org.actor("eve"), {}, LATER)
    assert out.audit[0].on_behalf_of == "dan" and out.audit[0].actor == "eve"
    assert "user:dan" in out.notices[0].recipients


def test_a_decided_instance_cannot_be_withdrawn(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    done = fire(proc, snap, Act(snap.tasks[0].id, "reject"), org.actor("bob"), {}, LATER)
    assert done.snapshot.status == "completed"
    with pytest.raises(InstanceOperationNotAllowed, match="already completed"):
        fire(proc, done.snapshot, Withdraw(), org.actor("ann"), {}, LATER)
    gone = fire(proc, snap, Withdraw(), org.actor("ann"), {}, LATER).snapshot
    with pytest.raises(InstanceOperationNotAllowed, match="already withdrawn"):
        fire(proc, gone, Withdraw(), org.actor("ann"), {}, LATER)
    # a refusal of its own kind, saying how it ended (the HTTP face answers it 409)
    with pytest.raises(InstanceClosed) as closed:
        fire(proc, done.snapshot, Withdraw(), org.actor("ann"), {}, LATER)
    assert (closed.value.status, closed.value.outcome) == ("completed", "rejected")


def test_owners_narrow_withdrawing_by_state_and_first_approval(org: Org) -> None:
    strict = BUY.replace(
        "states:\n", "withdraw: {in_states: [vp_review], until_first_approval: true}\nstates:\n"
    )
    proc = build(strict, org)
    snap = started(proc, org)
    fire(proc, snap, Withdraw(), org.actor("ann"), {}, LATER)  # allowed: nobody acted yet
    moved = fire(proc, snap, Act(snap.tasks[0].id, "approve"), org.actor("bob"), {}, LATER)
    assert moved.snapshot.state == "board"
    with pytest.raises(InstanceOperationNotAllowed, match=r"only in vp_review .* it is in board"):
        fire(proc, moved.snapshot, Withdraw(), org.actor("ann"), {}, LATER)
    anywhere = build(
        BUY.replace("states:\n", "withdraw: {until_first_approval: true}\nstates:\n"), org
    )
    moved = fire(anywhere, snap, Act(snap.tasks[0].id, "approve"), org.actor("bob"), {}, LATER)
    with pytest.raises(InstanceOperationNotAllowed, match="bob already acted on it"):
        fire(anywhere, moved.snapshot, Withdraw(), org.actor("ann"), {}, LATER)
    never = build(BUY.replace("states:\n", "withdraw: {allowed: false}\nstates:\n"), org)
    with pytest.raises(InstanceOperationNotAllowed, match="does not allow withdrawing"):
        fire(never, started(never, org), Withdraw(), org.actor("ann"), {}, LATER)


def test_withdraw_yaml_names_real_states(org: Org) -> None:
    bad = BUY.replace("states:\n", "withdraw: {in_states: [nowhere]}\nstates:\n")
    with pytest.raises(DefinitionError, match=r"p.yaml:\d+:\d+: unknown state 'nowhere'"):
        build(bad, org)
    with pytest.raises(DefinitionError, match="unknown key 'when'"):
        build(BUY.replace("states:\n", "withdraw: {when: x}\nstates:\n"), org)
