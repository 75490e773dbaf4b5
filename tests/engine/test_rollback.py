"""退回: back to a state the instance has been in, or to the requester (pure engine)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from engine.errors import ActionNotAllowed, InvalidData
from engine.operations import Rollback
from engine.org import Org
from engine.process import RESUBMIT
from engine.records import NoticeEvent, Outcome, TaskStatus
from engine.runtime import Act, Start, fire

from .conftest import NOW, build

FLOW = """
process: buy
title: Buy
four_eyes: true
variables:
  amount: {type: money, min: 0}
  twice: {type: money}
start: {require: [amount], set: {twice: "amount * 2"}, to: vp_review}
states:
  vp_review:
    deadline: {hours: 8}
    task:
      role: vp
      actions:
        approve: {to: cfo_review}
        reject: {to: rejected}
  cfo_review:
    deadline: {hours: 8}
    task:
      role: cfo
      actions:
        approve: {to: approved}
        reject: {to: rejected}
  approved: {final: true}
  rejected: {final: true}
"""


class Run:
    """One instance stepped through the engine, a minute per step."""

    def __init__(self, proc, org: Org, amount: str = "10") -> None:
        self.proc, self.org, self.minutes = proc, org, 0
        self.out = fire(proc, None, Start("i1", 1), org.actor("ann"), {"amount": amount}, NOW)

    def fire(self, user: str, event, **data) -> Outcome:
        self.minutes += 1
        now = NOW + timedelta(minutes=self.minutes)
        self.out = fire(self.proc, self.out.snapshot, event, self.org.actor(user), data, now)
        return self.out

    @property
    def task(self):
        return self.out.snapshot.tasks[0]

    def act(self, user: str, action: str = "approve", **data) -> Outcome:
        return self.fire(user, Act(self.task.id, action), **data)

    def back(self, user: str, to: str, comment: str | None = "wrong figures") -> Outcome:
        return self.fire(user, Rollback(self.task.id, to, comment))


def test_back_to_an_earlier_state_reopens_its_task_and_tells_why(org: Org) -> None:
    run = Run(build(FLOW, org), org)
    run.act("bob")
    assert run.out.snapshot.state == "cfo_review" and run.out.snapshot.approvers == ("bob",)
    old = run.task
    out = run.back("fay", "vp_review", "the quote is missing")
    snap = out.snapshot
    assert snap.state == "vp_review" and snap.status == "active"
    cancelled = next(t for t in out.changed if t.id == old.id)
    assert (cancelled.status, cancelled.decision, cancelled.decided_by) == (
        TaskStatus.cancelled,
        "rolled_back",
        "fay",
    )
    assert "cfo_review" in out.timers_cancel_states
    new = run.task
    assert new.id != old.id and new.roles == ("vp",) and new.state == "vp_review"
    assert [t.state for t in out.timers_set] == ["vp_review"]  # its deadline starts again
    entry = out.audit[0]
    assert (entry.action, entry.from_state, entry.to_state) == (
        "rollback",
        "cfo_review",
        "vp_review",
    )
    assert entry.data["comment"] == "the quote is missing"
    [notice] = out.notices
    assert notice.event == NoticeEvent.sent_back and notice.recipients == ("role:vp",)
    assert notice.data["comment"] == "the quote is missing"
    assert notice.data["sent_back_from"] == "cfo_review"
    # bob's earlier approval is forgotten: under four-eyes he may decide again
    assert snap.approvers == ()
    run.act("bob")
    assert run.out.snapshot.state == "cfo_review"


@pytest.mark.parametrize(
    ("to", "match"),
    [
        ("approved", "cannot send back to 'approved': that state has no task"),
        ("cfo_review", "that is where it is now"),
        ("nowhere", "there is no such state"),
        (RESUBMIT, "there is no such state"),
    ],
)
def test_back_to_a_state_it_cannot_go_to_is_refused(org: Org, to: str, match: str) -> None:
    run = Run(build(FLOW, org), org)
    run.act("bob")
    with pytest.raises(ActionNotAllowed, match=match):
        run.back("fay", to)


def test_back_to_a_state_never_visited_is_refused_with_the_choices(org: Org) -> None:
    run = Run(build(FLOW, org), org)
    with pytest.raises(ActionNotAllowed, match="never been there; choose one of: start"):
        run.back("bob", "cfo_review")


def test_instances_from_before_visited_was_kept_can_only_go_to_start(org: Org) -> None:
    run = Run(build(FLOW, org), org)
    run.act("bob")
    run.out = replace(run.out, snapshot=replace(run.out.snapshot, meta={}))
    with pytest.raises(ActionNotAllowed, match="never been there; choose one of: start"):
        run.back("fay", "vp_review")
    assert run.back("fay", "start").snapshot.state == RESUBMIT


def test_a_comment_is_required_and_only_those_awaited_may_send_back(org: Org) -> None:
    run = Run(build(FLOW, org), org)
    run.act("bob")
    with pytest.raises(ActionNotAllowed, match="--comment TEXT is required"):
        run.back("fay", "vp_review", "  ")
    with pytest.raises(ActionNotAllowed, match="needs role cfo"):
        run.back("bob", "vp_review")


def test_to_start_the_requester_revises_and_the_route_runs_again(org: Org) -> None:
    run = Run(build(FLOW, org), org)
    run.act("bob")
    out = run.back("fay", "start", "split it in two")
    task = run.task
    assert out.snapshot.state == RESUBMIT and task.roles == ("user:ann",)
    assert task.actions == ("resubmit", "withdraw")
    [notice] = out.notices
    assert notice.event == NoticeEvent.sent_back and notice.recipients == ("user:ann",)
    assert notice.data["to_requester"] is True and notice.data["comment"] == "split it in two"
    with pytest.raises(ActionNotAllowed, match="assigned to ann"):
        run.act("bob", "resubmit")
    with pytest.raises(InvalidData, match="twice: cannot be set by resubmit"):
        run.act("ann", "resubmit", twice="1")
    out = run.act("ann", "resubmit", amount="6")
    snap = out.snapshot
    assert snap.state == "vp_review" and snap.variables["twice"] == "12"
    assert out.audit[0].data["resubmit"] == "restart" and "sent_back_from" not in snap.meta
    assert snap.approvers == ()  # a new round: bob may approve again under four-eyes
    run.act("bob")
    with pytest.raises(ActionNotAllowed, match="choose one of: vp_review, start"):
        run.back("fay", "nowhere")


def test_resubmit_may_return_straight_to_the_state_that_sent_it_back(org: Org) -> None:
    text = FLOW.replace("states:\n", "rollback: {resubmit: return}\nstates:\n", 1)
    run = Run(build(text, org), org)
    run.act("bob")
    run.back("fay", "start")
    out = run.act("ann", "resubmit")
    assert out.snapshot.state == "cfo_review" and run.task.roles == ("cfo",)
    assert out.audit[0].data["resubmit"] == "return"
    assert out.snapshot.approvers == ("bob",)  # bob's approval still counts


def test_the_requester_may_withdraw_a_request_sent_back(org: Org) -> None:
    run = Run(build(FLOW, org), org)
    run.back("bob", "start")
    out = run.act("ann", "withdraw", comment="no longer needed")
    assert out.snapshot.status == "withdrawn" and out.snapshot.tasks == ()
    assert out.changed[-1].decision == "withdraw"
    again = Run(build(FLOW, org), org)
    again.back("bob", "start")
    with pytest.raises(ActionNotAllowed, match="sent back; choose: resubmit, withdraw"):
        again.act("ann", "approve")


def test_the_owner_limits_where_requests_may_be_sent_back_from(org: Org) -> None:
    text = FLOW.replace(
        "states:\n", "rollback: {allowed_from: [cfo_review], to_start: false}\nstates:\n", 1
    )
    run = Run(build(text, org), org)
    with pytest.raises(ActionNotAllowed, match=r"does not let 'vp_review' send requests back"):
        run.back("bob", "start")
    run.act("bob")
    with pytest.raises(ActionNotAllowed, match="does not send requests back to the requester"):
        run.back("fay", "start")
    assert run.back("fay", "vp_review").snapshot.state == "vp_review"


LOOP = FLOW.replace(
    "        reject: {to: rejected}\n  cfo_review:",
    "        reject: {to: rejected}\n        ask_again: {to: vp_review}\n  cfo_review:",
).replace(
    "    task:\n      role: cfo\n      actions:\n",
    "    task:\n      role: cfo\n      actions:\n        more: {to: vp_review}\n",
)


def test_a_loop_keeps_the_way_here_short_and_rollback_still_finds_its_states(org: Org) -> None:
    """Each state entered again closes a loop: where the instance has been stays as long as
    the path to where it is, however often it loops, and rollback still finds its states."""
    run = Run(build(LOOP.replace("four_eyes: true", "four_eyes: false"), org), org)
    for _ in range(30):  # vp approves, cfo asks for more: back to vp_review each time
        run.act("bob")
        run.act("fay", "more")
    visited = run.out.snapshot.meta["visited"]
    assert [e["state"] for e in visited] == ["vp_review"]
    run.act("bob")
    assert [e["state"] for e in run.out.snapshot.meta["visited"]] == ["vp_review", "cfo_review"]
    out = run.back("fay", "vp_review")
    assert out.snapshot.state == "vp_review" and out.snapshot.tasks[0].roles == ("vp",)
