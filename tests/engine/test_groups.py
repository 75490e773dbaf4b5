"""Tasks for people and signers in groups: the current group agrees, then the next one."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from engine.errors import ActionNotAllowed
from engine.groups import all_signoffs, group
from engine.org import Org
from engine.records import Outcome, TaskStatus
from engine.runtime import Act, Start, fire

from .conftest import NOW, build

REVIEW = """
process: review
title: Review
variables:
  amount: {type: money}
start: {require: [amount], to: check}
states:
  check:
    task:
      role: vp
      actions:
        approve: {to: done}
        reject: {to: refused}
  done: {final: true, outcome: approved}
  refused: {final: true, outcome: rejected}
"""


def started(org: Org) -> Outcome:
    return fire(build(REVIEW, org), None, Start("i1", 1), org.actor("ann"), {"amount": 5}, NOW)


def with_task(out: Outcome, **changes) -> Outcome:
    """The outcome with its open task changed as an operation would leave it."""
    task = replace(out.snapshot.tasks[0], **changes)
    return replace(out, snapshot=replace(out.snapshot, tasks=(task,)))


def act(org: Org, out: Outcome, user: str, action: str, minutes: int = 1) -> Outcome:
    task = out.snapshot.tasks[0]
    when = NOW + timedelta(minutes=minutes)
    return fire(build(REVIEW, org), out.snapshot, Act(task.id, action), org.actor(user), {}, when)


def test_a_person_slot_lets_only_that_person_act(org: Org) -> None:
    out = with_task(started(org), roles=("user:fay",))
    with pytest.raises(ActionNotAllowed, match="is assigned to fay; bob is not one of them"):
        act(org, out, "bob", "approve")
    done = act(org, out, "fay", "approve")
    assert done.snapshot.state == "done" and done.changed[0].decided_by == "fay"


def test_a_person_slot_of_an_absentee_is_filled_by_their_delegate(org: Org) -> None:
    done = act(org, with_task(started(org), roles=("user:dan",)), "eve", "approve")
    assert done.audit[0].on_behalf_of == "dan"


def test_a_claimed_task_is_the_claimers_alone(org: Org) -> None:
    out = with_task(started(org), meta={"claimed_by": "cat"})
    assert out.snapshot.tasks[0].pending_keys == ("user:cat",)
    with pytest.raises(ActionNotAllowed, match="cat has claimed this task"):
        act(org, out, "bob", "approve")
    assert act(org, out, "cat", "approve").snapshot.state == "done"


def test_queued_group_decides_after_the_current_one_and_keeps_signatures(org: Org) -> None:
    queued = group(("user:fay", "user:gus"), "all", "after")
    out = with_task(started(org), meta={"queue": [queued]})
    first = act(org, out, "bob", "approve")
    task = first.snapshot.tasks[0]
    assert first.snapshot.state == "check" and task.status == TaskStatus.open
    assert task.roles == ("user:fay", "user:gus") and task.mode == "all" and task.queue == ()
    assert [s.user for s in all_signoffs(task)] == ["bob"]
    assert [n.recipients for n in first.notices] == [("user:fay", "user:gus")]
    assert first.snapshot.tasks[0].pending_keys == ("user:fay", "user:gus")
    second = act(org, first, "gus", "approve", minutes=2)
    assert second.snapshot.state == "check"
    assert second.snapshot.tasks[0].pending_roles == ("user:fay",)
    third = act(org, second, "fay", "approve", minutes=3)
    assert third.snapshot.state == "done"
    assert [s.user for s in all_signoffs(third.changed[0])] == ["bob", "gus", "fay"]


def test_a_non_agreeing_action_in_a_queued_group_decides_at_once(org: Org) -> None:
    queued = group(("user:fay",), "any", "after")
    first = act(org, with_task(started(org), meta={"queue": [queued]}), "bob", "approve")
    refused = act(org, first, "fay", "reject", minutes=2)
    assert refused.snapshot.state == "refused" and refused.changed[0].decision == "reject"


def test_without_a_queue_an_any_task_closes_on_the_first_agreement(org: Org) -> None:
    assert act(org, started(org), "bob", "approve").snapshot.state == "done"
