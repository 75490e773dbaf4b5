"""加签: signers added before, after or beside the person the task awaits (pure engine)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.errors import ActionNotAllowed
from engine.operations import AddSigners, Where
from engine.org import Org, load_org
from engine.records import NoticeEvent, Outcome, TaskStatus
from engine.runtime import Act, Start, fire
from engine.yamlsafe import load_text

from .conftest import NOW, ORG_YAML, build

BUY = """
process: buy
title: Buy
four_eyes: requester
variables:
  amount: {type: money, min: 0}
start: {require: [amount], to: vp_review}
states:
  vp_review:
    task:
      role: vp
      actions:
        approve: {to: board, when: "amount < 1000", when_message: too much for a VP}
        reject: {to: rejected}
  board:
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


def started(proc, org: Org, amount: str = "10") -> Outcome:
    return fire(proc, None, Start("i1", 1), org.actor("ann"), {"amount": amount}, NOW)


def step(proc, org: Org, out: Outcome, user: str, event, minutes: int = 1) -> Outcome:
    return fire(proc, out.snapshot, event, org.actor(user), {}, NOW + timedelta(minutes=minutes))


def add(proc, org, out, user, users, where, mode="any", comment=None) -> Outcome:
    task = out.snapshot.tasks[0]
    return step(
        proc, org, out, user, AddSigners(task.id, tuple(users), Where(where), mode, comment)
    )


def act(proc, org, out, user, action="approve", minutes: int = 2) -> Outcome:
    return step(proc, org, out, user, Act(out.snapshot.tasks[0].id, action), minutes)


def test_before_the_added_decide_first_then_the_task_returns_to_the_adder(org: Org) -> None:
    proc = build(BUY, org)
    out = add(proc, org, started(proc, org), "bob", ["fay", "gus"], "before", comment="check")
    task = out.snapshot.tasks[0]
    assert task.roles == ("user:fay,gus",) and task.mode == "any"
    assert task.queue[0]["roles"] == ["user:bob"] and task.queue[0]["kind"] == "return"
    entry = out.audit[-1]
    assert (entry.action, entry.data["where"], entry.data["comment"]) == (
        "add_signer",
        "before",
        "check",
    )
    notice = out.notices[-1]
    assert notice.event == NoticeEvent.signer_added
    assert notice.recipients == ("user:fay", "user:gus")
    assert notice.data["their_turn"] is True and notice.data["comment"] == "check"
    with pytest.raises(ActionNotAllowed, match="is assigned to fay or gus"):
        act(proc, org, out, "bob")  # the adder waits for them
    out = act(proc, org, out, "gus")
    task = out.snapshot.tasks[0]
    assert (out.snapshot.state, task.roles, task.id) == ("vp_review", ("user:bob",), "i1-1")
    assert [s["user"] for s in task.meta["signed"]] == ["gus"]
    with pytest.raises(ActionNotAllowed, match="assigned to bob"):
        act(proc, org, out, "cat", minutes=3)  # the task came back to bob, not to every vp
    out = act(proc, org, out, "bob", minutes=3)
    assert out.snapshot.state == "board"


def test_before_with_all_needs_every_added_person(org: Org) -> None:
    proc = build(BUY, org)
    out = add(proc, org, started(proc, org), "bob", ["fay", "gus"], "before", "all")
    assert out.snapshot.tasks[0].roles == ("user:fay", "user:gus")
    out = act(proc, org, out, "fay")
    assert out.snapshot.tasks[0].pending_roles == ("user:gus",)
    out = act(proc, org, out, "gus", minutes=3)
    assert out.snapshot.tasks[0].pending_roles == ("user:bob",)


def test_an_added_signer_who_rejects_decides_at_once(org: Org) -> None:
    proc = build(BUY, org)
    out = add(proc, org, started(proc, org), "bob", ["fay"], "before")
    out = act(proc, org, out, "fay", "reject")
    assert (out.snapshot.status, out.snapshot.state) == ("completed", "rejected")
    closed = out.changed[-1]
    assert (closed.status, closed.decision, closed.decided_by) == (TaskStatus.done, "reject", "fay")


def test_after_the_adder_agrees_now_and_the_added_decide_next(org: Org) -> None:
    proc = build(BUY, org)
    out = add(proc, org, started(proc, org), "bob", ["fay"], "after")
    task = out.snapshot.tasks[0]
    assert out.snapshot.state == "vp_review" and task.roles == ("user:fay",)
    assert [(s["user"], s["action"]) for s in task.meta["signed"]] == [("bob", "approve")]
    assert "bob" in out.snapshot.approvers
    assert out.audit[-1].data["signed"] == "approve"
    out = act(proc, org, out, "fay")
    assert out.snapshot.state == "board"


def test_after_checks_the_agreeing_actions_guard(org: Org) -> None:
    proc = build(BUY, org)
    with pytest.raises(ActionNotAllowed, match="too much for a VP"):
        add(proc, org, started(proc, org, "5000"), "bob", ["fay"], "after")


def test_parallel_joins_the_adders_countersign(org: Org) -> None:
    proc = build(BUY, org)
    out = add(proc, org, started(proc, org), "bob", ["fay"], "parallel")
    task = out.snapshot.tasks[0]
    assert (task.roles, task.mode) == (("user:bob", "user:fay"), "all")
    out = act(proc, org, out, "bob")
    assert out.snapshot.state == "vp_review"
    assert out.snapshot.tasks[0].pending_roles == ("user:fay",)
    out = act(proc, org, out, "fay", minutes=3)
    assert out.snapshot.state == "board"


def test_parallel_in_a_countersign_keeps_the_signatures_given(org: Org) -> None:
    proc = build(BUY, org)
    out = act(proc, org, started(proc, org), "bob")
    out = act(proc, org, out, "fay", minutes=3)  # fay signs for cfo
    out = add(proc, org, out, "gus", ["cat", "eve"], "parallel", "any")
    task = out.snapshot.tasks[0]
    assert task.roles == ("head", "cfo", "user:cat,eve")
    assert [s.user for s in task.signoffs] == ["fay"]
    assert set(task.pending_roles) == {"head", "user:cat,eve"}


@pytest.mark.parametrize(
    ("user", "users", "match"),
    [
        ("bob", ["ann"], "four-eyes rule: ann requested this"),
        ("bob", ["bob"], "cannot add themselves"),
        ("bob", ["nobody"], "unknown user 'nobody'"),
        ("bob", ["zed"], "zed is away and has no delegate"),
        ("fay", ["gus"], "needs role vp"),
        ("bob", [], "name at least one user"),
    ],
)
def test_refusals(user: str, users: list[str], match: str) -> None:
    org = load_org(load_text(ORG_YAML + "  zed: {name: Zed, roles: [clerk], active: false}\n", "o"))
    proc = build(BUY, org)
    with pytest.raises(ActionNotAllowed, match=match):
        add(proc, org, started(proc, org), user, users, "before")


def test_an_away_user_with_a_delegate_may_be_added(org: Org) -> None:
    proc = build(BUY, org)
    out = add(proc, org, started(proc, org), "bob", ["dan"], "before")
    out = act(proc, org, out, "eve")  # dan's delegate
    assert out.snapshot.tasks[0].pending_roles == ("user:bob",)
    assert out.snapshot.tasks[0].meta["signed"][0]["on_behalf_of"] == "dan"


def test_a_task_without_an_agreeing_action_is_refused(org: Org) -> None:
    text = BUY.replace("approve: {to: board, when", "ok: {to: board, when")
    proc = build(text, org)
    with pytest.raises(ActionNotAllowed, match="declares one with 'countersign: ACTION'"):
        add(proc, org, started(proc, org), "bob", ["fay"], "before")
    assert proc.spec.states["vp_review"].task.agree is None


def test_an_unknown_mode_and_an_already_awaited_person_are_refused(org: Org) -> None:
    proc = build(BUY, org)
    with pytest.raises(ActionNotAllowed, match="unknown mode 'both'"):
        add(proc, org, started(proc, org), "bob", ["fay"], "before", "both")
    out = add(proc, org, started(proc, org), "bob", ["fay"], "before")
    with pytest.raises(ActionNotAllowed, match="bob is already awaited"):
        add(proc, org, out, "fay", ["bob"], "before")  # bob's own turn is queued


def test_before_in_a_countersign_returns_to_the_adder_with_the_signatures_kept(org: Org) -> None:
    proc = build(BUY, org)
    out = act(proc, org, started(proc, org), "bob")
    out = act(proc, org, out, "fay", minutes=3)  # fay signs for cfo
    out = add(proc, org, out, "gus", ["eve"], "before")
    back = out.snapshot.tasks[0].queue[0]
    assert back["roles"] == ["user:gus", "cfo"] and back["mode"] == "all"
    assert [s["user"] for s in back["signoffs"]] == ["fay"]
    out = act(proc, org, out, "eve", minutes=4)
    task = out.snapshot.tasks[0]
    assert task.pending_roles == ("user:gus",) and [s.user for s in task.signoffs] == ["fay"]
    out = act(proc, org, out, "gus", minutes=5)
    assert out.snapshot.state == "approved"


def test_an_absentee_whose_stand_in_is_the_requester_cannot_be_added() -> None:
    """Four-eyes looks at who would really sign: hal is away and ann signs for him, and
    ann requested this; adding hal would give a task nobody may act on."""
    org = load_org(
        load_text(
            ORG_YAML + "  hal: {name: Hal, roles: [clerk], active: false, delegate: ann}\n",
            "org.yaml",
        )
    )
    proc = build(BUY, org)
    with pytest.raises(ActionNotAllowed, match=r"ann \(who would sign for hal\) requested"):
        add(proc, org, started(proc, org), "bob", ["hal"], "before")
