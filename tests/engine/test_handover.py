"""Transfer (转交), claim and unclaim: the pure rules."""

from __future__ import annotations

import pytest

from engine.errors import ActionNotAllowed
from engine.operations import Claim, Transfer, Unclaim
from engine.org import Org, load_org
from engine.records import NoticeEvent
from engine.runtime import Act, fire
from engine.yamlsafe import load_text

from .conftest import ORG_YAML, build
from .purchase import BUY, LATER, started


@pytest.fixture
def org() -> Org:
    """The test org plus hal, a vp away with no delegate."""
    text = ORG_YAML + "  hal: {name: Hal, roles: [vp], active: false}\n"
    return load_org(load_text(text, "org.yaml"))


def at_board(proc, org: Org):
    """Past the vp (bob approved): the gm + cfo countersign."""
    snap = started(proc, org)
    return fire(proc, snap, Act(snap.tasks[0].id, "approve"), org.actor("bob"), {}, LATER).snapshot


def test_transfer_makes_an_any_task_the_new_holders_alone(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    task = snap.tasks[0]
    out = fire(proc, snap, Transfer(task.id, "gus", "on leave"), org.actor("cat"), {}, LATER)
    [moved] = out.changed
    assert moved.roles == ("user:gus",) and moved.pending_keys == ("user:gus",)
    [notice] = out.notices
    assert (notice.event, notice.recipients) == (NoticeEvent.transferred, ("user:gus",))
    assert notice.data["comment"] == "on leave" and notice.data["by"] == "cat"
    entry = out.audit[0]
    assert (entry.action, entry.data["from"], entry.data["to"]) == ("transfer", "vp", "gus")
    for user in ("cat", "bob"):  # the role's holders are out of it now
        with pytest.raises(ActionNotAllowed, match="assigned to gus"):
            fire(proc, out.snapshot, Act(task.id, "approve"), org.actor(user), {}, LATER)
    done = fire(proc, out.snapshot, Act(task.id, "approve"), org.actor("gus"), {}, LATER)
    assert done.snapshot.state == "board"


def test_transfer_in_a_countersign_replaces_only_the_actors_slot_and_keeps_signatures(
    org: Org,
) -> None:
    proc = build(BUY, org)
    snap = at_board(proc, org)
    task = snap.tasks[0]
    signed = fire(proc, snap, Act(task.id, "approve"), org.actor("fay"), {}, LATER).snapshot
    out = fire(proc, signed, Transfer(task.id, "cat", "gm away"), org.actor("eve"), {}, LATER)
    [moved] = out.changed
    assert moved.roles == ("user:cat", "cfo")
    assert [s.user for s in moved.signoffs] == ["fay"] and moved.pending_roles == ("user:cat",)
    assert out.audit[0].on_behalf_of == "dan"  # eve stands in for dan, the gm
    done = fire(proc, out.snapshot, Act(task.id, "approve"), org.actor("cat"), {}, LATER)
    assert done.snapshot.outcome == "approved"


@pytest.mark.parametrize(
    ("to", "match"),
    [
        ("ann", "four-eyes rule: ann requested this"),
        ("hal", "hal is not active and has no active delegate"),
        ("bob", "four-eyes rule: bob already acted earlier"),
        ("fay", "four-eyes rule: fay already acted earlier"),
        ("zed", "unknown user 'zed'"),
        ("eve", "already eve's turn"),
    ],
)
def test_transfer_refuses_who_could_not_act(org: Org, to: str, match: str) -> None:
    proc = build(BUY, org)
    snap = at_board(proc, org)
    task = snap.tasks[0]
    signed = fire(proc, snap, Act(task.id, "approve"), org.actor("fay"), {}, LATER).snapshot
    with pytest.raises(ActionNotAllowed, match=match):
        fire(proc, signed, Transfer(task.id, to, "why"), org.actor("eve"), {}, LATER)


def test_transfer_refuses_someone_who_signed_this_task_without_strict_four_eyes(
    org: Org,
) -> None:
    proc = build(BUY.replace("four_eyes: true", "four_eyes: requester"), org)
    snap = at_board(proc, org)
    task = snap.tasks[0]
    signed = fire(proc, snap, Act(task.id, "approve"), org.actor("fay"), {}, LATER).snapshot
    with pytest.raises(ActionNotAllowed, match="fay has already signed this task"):
        fire(proc, signed, Transfer(task.id, "fay", "x"), org.actor("eve"), {}, LATER)
    moved = fire(proc, signed, Transfer(task.id, "bob", "x"), org.actor("eve"), {}, LATER)
    assert moved.changed[0].roles == ("user:bob", "cfo")  # bob acted before: allowed here


def test_only_who_may_act_transfers_and_a_reason_is_required(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    task = snap.tasks[0]
    with pytest.raises(ActionNotAllowed, match="needs role vp"):
        fire(proc, snap, Transfer(task.id, "gus", "x"), org.actor("fay"), {}, LATER)
    with pytest.raises(ActionNotAllowed, match="a comment is required"):
        fire(proc, snap, Transfer(task.id, "gus", "  "), org.actor("cat"), {}, LATER)


def test_a_delegate_of_the_requester_cannot_receive_under_four_eyes(org: Org) -> None:
    """eve stands in for dan; a request by eve cannot go to dan, whom eve would act for."""
    proc = build(BUY, org)
    snap = started(proc, org, "eve")
    with pytest.raises(ActionNotAllowed, match=r"four-eyes rule: eve \(acting for dan\)"):
        fire(proc, snap, Transfer(snap.tasks[0].id, "dan", "x"), org.actor("cat"), {}, LATER)


def test_claim_makes_a_role_task_one_holders_until_released(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    task = snap.tasks[0]
    claimed = fire(proc, snap, Claim(task.id), org.actor("cat"), {}, LATER)
    assert claimed.changed[0].claimed_by == "cat"
    assert claimed.changed[0].pending_keys == ("user:cat",)
    assert claimed.audit[0].action == "claim"
    snap = claimed.snapshot
    with pytest.raises(ActionNotAllowed, match="cat has claimed it"):
        fire(proc, snap, Claim(task.id), org.actor("bob"), {}, LATER)
    with pytest.raises(ActionNotAllowed, match="cat has already claimed it"):
        fire(proc, snap, Claim(task.id), org.actor("cat"), {}, LATER)
    with pytest.raises(ActionNotAllowed, match="cat has claimed this task"):
        fire(proc, snap, Act(task.id, "approve"), org.actor("bob"), {}, LATER)
    with pytest.raises(ActionNotAllowed, match="cat claimed it; only they"):
        fire(proc, snap, Unclaim(task.id), org.actor("bob"), {}, LATER)
    released = fire(proc, snap, Unclaim(task.id), org.actor("cat"), {}, LATER)
    assert released.changed[0].claimed_by is None
    assert released.changed[0].pending_keys == ("vp",)
    assert released.notices[0].event == NoticeEvent.task_assigned
    assert released.notices[0].recipients == ("role:vp",)
    with pytest.raises(ActionNotAllowed, match="nobody has claimed it"):
        fire(proc, released.snapshot, Unclaim(task.id), org.actor("cat"), {}, LATER)
    fire(proc, released.snapshot, Act(task.id, "approve"), org.actor("bob"), {}, LATER)


def test_claim_needs_the_right_to_act_and_an_any_task(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    with pytest.raises(ActionNotAllowed, match="needs role vp"):
        fire(proc, snap, Claim(snap.tasks[0].id), org.actor("fay"), {}, LATER)
    board = at_board(proc, org)
    with pytest.raises(ActionNotAllowed, match="cannot be claimed"):
        fire(proc, board, Claim(board.tasks[0].id), org.actor("fay"), {}, LATER)


def test_a_transfer_ends_a_claim(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    task = snap.tasks[0]
    claimed = fire(proc, snap, Claim(task.id), org.actor("cat"), {}, LATER).snapshot
    out = fire(proc, claimed, Transfer(task.id, "gus", "x"), org.actor("cat"), {}, LATER)
    assert out.changed[0].claimed_by is None and out.changed[0].pending_keys == ("user:gus",)
    with pytest.raises(ActionNotAllowed, match="waits for gus alone"):
        fire(proc, out.snapshot, Claim(task.id), org.actor("gus"), {}, LATER)
