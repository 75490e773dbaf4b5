"""Escalation hands the overdue part of a task on, keeping the signatures already given."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.errors import ActionNotAllowed, DefinitionError
from engine.org import Org, load_org
from engine.records import Outcome, TimerKind
from engine.runtime import Act, Start, TimerFired, fire
from engine.yamlsafe import load_text

from .conftest import NOW, build

ORG = """
org: t
roles: {clerk: {}, head: {}, cfo: {}}
users:
  ann: {name: Ann, roles: [clerk]}
  gus: {name: Gus, roles: [head], manager: max}
  fay: {name: Fay, roles: [cfo], manager: max}
  max: {name: Max}
  top: {name: Top, roles: [cfo]}
"""

BOARD = """
process: board
title: Board
start: {to: board}
states:
  board:
    deadline:
      hours: 8
      escalations:
        - {REASSIGN}
    task:
      roles: [head, cfo]
      mode: all
      countersign: approve
      actions:
        approve: {to: approved}
        reject: {to: rejected}
  approved: {final: true}
  rejected: {final: true}
"""


@pytest.fixture
def people() -> Org:
    return load_org(load_text(ORG, "org.yaml"))


def escalated(org: Org, reassign: str, signer: str = "fay") -> Outcome:
    proc = build(BOARD.replace("{REASSIGN}", reassign), org)
    out = fire(proc, None, Start("i1", 1), org.actor("ann"), {}, NOW)
    task = out.snapshot.tasks[0]
    [timer] = [t for t in out.timers_set if t.kind == TimerKind.escalation]
    out = fire(proc, out.snapshot, Act(task.id, "approve"), org.actor(signer), {}, NOW)
    return fire(proc, out.snapshot, TimerFired(timer), org.actor("ann"), {}, timer.due_at)


def test_manager_of_the_approver_joins_and_the_signature_given_stays(people: Org) -> None:
    out = escalated(people, "reassign: {manager_of: approver}")
    task = out.snapshot.tasks[0]
    assert task.roles == ("user:gus,max", "cfo")  # gus may still act, or his manager
    assert [(s.user, s.role) for s in task.signoffs] == [("fay", "cfo")]
    assert task.pending_roles == ("user:gus,max",)
    entry = out.audit[-1]
    assert entry.data["reassigned_to"] == "user:max" and entry.data["keep_original"] is True
    assert entry.data["resolved"] == ["manager of gus (org.yaml): max"]
    assert "user:max" in out.notices[-1].recipients
    proc = build(BOARD.replace("{REASSIGN}", "reassign: {manager_of: approver}"), people)
    done = fire(proc, out.snapshot, Act(task.id, "approve"), people.actor("max"), {}, NOW)
    assert done.snapshot.state == "approved"


def test_without_keep_original_the_new_assignee_alone_acts(people: Org) -> None:
    text = "reassign: {manager_of: approver}\n          keep_original: false"
    out = escalated(people, text)
    task = out.snapshot.tasks[0]
    assert task.roles == ("user:max", "cfo") and [s.user for s in task.signoffs] == ["fay"]
    # the head (gus) is told the task was taken away, without its actions (no act line);
    # max, who now acts, gets the notice with them
    taken, told = out.notices[-2:]
    assert taken.recipients == ("role:head",) and taken.data["taken_from_you"] is True
    assert "actions" not in taken.data
    assert "user:max" in told.recipients and "role:head" not in told.recipients
    assert told.data["actions"] == ["approve", "reject"] and "taken_from_you" not in told.data
    proc = build(BOARD.replace("{REASSIGN}", text), people)
    with pytest.raises(ActionNotAllowed, match="assigned to max; gus is not one of them"):
        fire(proc, out.snapshot, Act(task.id, "approve"), people.actor("gus"), {}, NOW)


def test_a_role_reassignment_keeps_the_countersignatures(people: Org) -> None:
    out = escalated(people, "reassign: clerk", signer="gus")
    task = out.snapshot.tasks[0]
    # one countersign slot either the cfo holders or the clerk may fill (read as of now)
    assert task.roles == ("head", "user:fay,top,ann") and task.signoffs[0].user == "gus"


def test_nobody_to_escalate_to_leaves_the_task_and_says_why(people: Org) -> None:
    out = escalated(people, "reassign: {manager_of: requester}")
    task = out.snapshot.tasks[0]
    assert task.roles == ("head", "cfo")
    assert out.audit[-1].data["resolved"] == ["ann has no manager in org.yaml"]
    assert out.audit[-1].data["reassigned_to"] is None


def test_a_target_needs_one_kind_and_known_names(people: Org) -> None:
    with pytest.raises(DefinitionError, match="exactly one of role, user or manager_of"):
        build(BOARD.replace("{REASSIGN}", "reassign: {role: cfo, user: max}"), people)
    with pytest.raises(DefinitionError, match="unknown user 'nobody'"):
        build(BOARD.replace("{REASSIGN}", "reassign: {user: nobody}"), people)
    with pytest.raises(DefinitionError, match="unknown role 'ceo'"):
        build(BOARD.replace("{REASSIGN}", "reassign: {role: ceo}"), people)


def test_the_timer_fires_after_the_deadline(people: Org) -> None:
    out = escalated(people, "reassign: {user: max}")
    assert out.snapshot.tasks[0].roles == ("user:gus,max", "cfo")
    assert out.snapshot.updated_at == NOW + timedelta(hours=8)


def two_waiting(org: Org, reassign: str) -> Outcome:
    """The board countersign escalated while both places still wait."""
    proc = build(BOARD.replace("{REASSIGN}", reassign), org)
    out = fire(proc, None, Start("i1", 1), org.actor("ann"), {}, NOW)
    [timer] = [t for t in out.timers_set if t.kind == TimerKind.escalation]
    return fire(proc, out.snapshot, TimerFired(timer), org.actor("ann"), {}, timer.due_at)


@pytest.mark.parametrize(
    "reassign",
    [
        "reassign: {role: cfo}\n          keep_original: false",
        # gus and fay share a manager: handing both places to max would be one person
        "reassign: {manager_of: approver}\n          keep_original: false",
    ],
)
def test_a_countersign_never_shrinks_to_fewer_people(people: Org, reassign: str) -> None:
    out = two_waiting(people, reassign)
    task = out.snapshot.tasks[0]
    assert len(task.pending_roles) == 2, task.roles
    assert any(
        "already has a place in this countersign" in w for w in out.audit[-1].data["resolved"]
    )
    proc = build(BOARD.replace("{REASSIGN}", reassign), people)
    signer = "top" if "role" in reassign else "max"
    once = fire(proc, out.snapshot, Act(task.id, "approve"), people.actor(signer), {}, NOW)
    assert once.snapshot.state == "board"  # one signature does not decide a 会签


def test_a_place_handed_to_one_that_already_signed_stays(people: Org) -> None:
    out = escalated(people, "reassign: {role: cfo}\n          keep_original: false")
    task = out.snapshot.tasks[0]
    assert task.pending_roles == ("head",)  # not merged into the signed cfo place
    proc = build(BOARD.replace("{REASSIGN}", "reassign: {role: cfo}"), people)
    done = fire(proc, out.snapshot, Act(task.id, "approve"), people.actor("gus"), {}, NOW)
    assert done.snapshot.state == "approved"
