"""Tasks with ``assignees``: resolved when they open, recorded in the task and the audit,
told to the people found; fallbacks and skips; and what ``validate`` says about them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from engine.errors import ActionNotAllowed, DefinitionError, WorkflowError
from engine.org import Org, load_org
from engine.process import compile_process
from engine.records import NoticeEvent, Outcome
from engine.runtime import Act, Start, fire
from engine.yamlsafe import load_text

from .conftest import NOW, SH
from .test_assignees import TREE

PURCHASE = """
process: purchase
title: Purchase request
four_eyes: true
if_none: manager_up
variables:
  amount: {type: money}
  buyer: {type: user}
start: {require: [amount], accept: [buyer], to: manager}
states:
  manager:
    task:
      assignees: [{manager: requester}]
      actions: {approve: {to: finance}, reject: {to: rejected}}
  finance:
    task:
      assignees: [{head: fin}]
      if_none: {role: finance}
      actions: {approve: {to: sign}, reject: {to: rejected}}
  sign:
    task:
      assignees:
        - {manager: requester, up_to: {role: gm}}
        - {user_var: buyer}
      mode: all
      countersign: approve
      actions: {approve: {to: approved}, reject: {to: rejected}}
  approved: {final: true, outcome: approved}
  rejected: {final: true, outcome: rejected}
"""


@pytest.fixture
def tree() -> Org:
    return load_org(load_text(TREE, "org.yaml"))


def start(text: str, org: Org, user: str = "ann", now: datetime = NOW, **data) -> Outcome:
    proc = compile_process(load_text(text, "p.yaml"), org)
    return fire(proc, None, Start("i1", 1), org.actor(user), data, now)


def act(
    text: str, org: Org, out: Outcome, user: str, action: str, minutes: int = 1, at=NOW
) -> Outcome:
    proc = compile_process(load_text(text, "p.yaml"), org)
    snap = out.snapshot
    when = at + timedelta(minutes=minutes)
    return fire(proc, snap, Act(snap.tasks[0].id, action), org.actor(user), {}, when)


def test_a_purchase_goes_to_the_managers_finance_and_a_countersign(tree: Org) -> None:
    out = start(PURCHASE, tree, amount="900", buyer="eve")
    (task,) = out.snapshot.tasks
    assert task.roles == ("user:cat",)
    assert task.meta["assigned"] == {
        "slots": [
            {
                "slot": "user:cat",
                "reason": "manager of the requester: manager of ann (head of north)",
            }
        ]
    }
    entering = out.audit[-1]
    assert entering.data["assigned"] == task.meta["assigned"]
    (notice,) = [n for n in out.notices if n.event == NoticeEvent.task_assigned]
    assert notice.recipients == ("user:cat",)
    # nobody else may act on it, not even a holder of every role
    with pytest.raises(ActionNotAllowed, match="is assigned to cat; gus is not one of them"):
        act(PURCHASE, tree, out, "gus", "approve")
    out = act(PURCHASE, tree, out, "cat", "approve")
    # the head of finance is away and her delegation starts on 1 October: role finance
    (task,) = out.snapshot.tasks
    assert task.roles == ("finance",)
    reason = task.meta["assigned"]["slots"][0]["reason"]
    assert "does not cover this day" in reason and reason.endswith("fallback to role finance")
    out = act(PURCHASE, tree, out, "hal", "approve", minutes=2)
    (task,) = out.snapshot.tasks
    assert task.roles == ("user:gus", "user:eve") and task.mode == "all"
    out = act(PURCHASE, tree, out, "eve", "approve", minutes=3)
    out = act(PURCHASE, tree, out, "gus", "approve", minutes=4)
    assert out.snapshot.outcome == "approved"


def test_within_the_delegation_days_the_delegate_gets_the_task(tree: Org) -> None:
    inside = datetime(2026, 10, 5, 9, 0, tzinfo=SH)
    out = start(PURCHASE, tree, now=inside, amount="900")
    out = act(PURCHASE, tree, out, "cat", "approve", at=inside)
    (task,) = out.snapshot.tasks
    assert task.roles == ("user:hal",)
    assert (
        "fay is away; their delegate hal stands in" in task.meta["assigned"]["slots"][0]["reason"]
    )


def test_the_process_fallback_climbs_to_the_next_manager(tree: Org) -> None:
    # eve's department (south) has no head: manager_up, the process default, finds bob
    text = PURCHASE.replace(
        "assignees: [{manager: requester}]", "assignees: [{head: {of: requester}}]"
    )
    out = start(text, tree, user="eve", amount="5")
    (task,) = out.snapshot.tasks
    assert task.roles == ("user:bob",)
    assert "next manager up: bob" in task.meta["assigned"]["slots"][0]["reason"]


def test_nobody_and_no_fallback_refuses_the_step_and_says_why(tree: Org) -> None:
    text = PURCHASE.replace("if_none: manager_up\n", "").replace(
        "assignees: [{manager: requester}]", "assignees: [{user: ivy}]"
    )
    with pytest.raises(
        WorkflowError,
        match=r"nobody can take the task of state 'manager': user ivy: named user ivy; ivy is "
        r"away and has no delegate; nobody found; fix org\.yaml",
    ):
        start(text, tree, amount="5")


def test_a_skipped_step_is_taken_by_the_system_and_audited(tree: Org) -> None:
    text = PURCHASE.replace("if_none: manager_up", "if_none: skip").replace(
        "assignees: [{manager: requester}]", "assignees: [{user: ivy}]"
    )
    out = start(text, tree, amount="5")
    assert out.snapshot.state == "finance"
    skipped = [a for a in out.audit if a.action == "skipped"]
    assert len(skipped) == 1 and skipped[0].actor == "system"
    assert skipped[0].from_state == "manager" and skipped[0].to_state == "finance"
    assert skipped[0].data["action"] == "approve"
    assert skipped[0].data["skipped"]["skip"]["reason"].endswith("step skipped (approve)")


def test_the_requester_found_is_reported_and_four_eyes_still_holds(tree: Org) -> None:
    text = PURCHASE.replace(
        "assignees: [{manager: requester}]", "assignees: [{role: dm, in: requester}]"
    )
    out = start(text, tree, amount="5")
    (task,) = out.snapshot.tasks
    assert task.roles == ("user:ann",)
    assert task.meta["assigned"]["requester_in"] == ["user:ann"]
    with pytest.raises(ActionNotAllowed, match="four-eyes rule: ann requested this"):
        act(text, tree, out, "ann", "approve")


def problems(text: str, org: Org) -> list[str]:
    with pytest.raises(DefinitionError) as err:
        compile_process(load_text(text, "p.yaml"), org)
    return [str(p) for p in err.value.problems]


def test_validate_reports_every_bad_assignee_with_its_place(tree: Org) -> None:
    text = (
        PURCHASE.replace("if_none: manager_up", "if_none: [{role: boss}]")
        .replace(
            "assignees: [{manager: requester}]",
            "assignees: [{role: chief, in: {department: moon}}, {user: zed},"
            " {manager: {var: amount}}]",
        )
        .replace("assignees: [{head: fin}]", "assignees: [{head: mars}, {user_var: nope}]")
        .replace("if_none: {role: finance}", "if_none: [{skip: sign}, {role: ghost}]")
        .replace("{user_var: buyer}", "{head: {of: {var: buyer}}}")
    )
    got = problems(text, tree)
    expected = [
        r"p\.yaml:5:\d+: unknown role 'boss'",
        r"p\.yaml:13:\d+: unknown role 'chief'",
        r"p\.yaml:13:\d+: unknown department 'moon'; org\.yaml has: fin, north, sales, south, top",
        r"p\.yaml:13:\d+: unknown user 'zed'",
        r"p\.yaml:13:\d+: variable 'amount' is of type money; it must be of type user",
        r"p\.yaml:17:\d+: unknown department 'mars'",
        r"p\.yaml:17:\d+: unknown variable 'nope'",
        r"p\.yaml:18:\d+: skip action 'sign' is not an action of this task",
        r"p\.yaml:18:\d+: unknown role 'ghost'",
    ]
    for pattern in expected:
        assert any(re.match(pattern, g) for g in got), (pattern, got)
    assert len(got) == len(expected), got


def test_a_skip_must_know_its_action(tree: Org) -> None:
    text = PURCHASE.replace("if_none: manager_up", "if_none: skip").replace(
        "actions: {approve: {to: finance}, reject: {to: rejected}}",
        "actions: {ok: {to: finance}, no: {to: rejected}}",
    )
    (msg,) = problems(text, tree)
    assert re.match(
        r"p\.yaml:5:\d+: 'skip' does not say which action to take \(for task 'manager'\)", msg
    )
    text = PURCHASE.replace("if_none: {role: finance}", "if_none: {skip: approve}").replace(
        "approve: {to: sign}", "approve: {to: sign, require: [buyer]}"
    )
    (msg,) = problems(text, tree)
    assert re.match(r"p\.yaml:18:\d+: skip action 'approve' requires input \(buyer\)", msg), msg


def test_a_task_takes_one_way_of_naming_who_acts(tree: Org) -> None:
    text = PURCHASE.replace(
        "assignees: [{manager: requester}]", "assignees: [{manager: requester}]\n      role: dm"
    )
    (msg,) = problems(text, tree)
    assert "exactly one of 'role', 'role_from', 'roles' or 'assignees'" in msg
    text = PURCHASE.replace(
        "assignees: [{manager: requester}]", "role: dm\n      if_none: manager_up"
    )
    (msg,) = problems(text, tree)
    assert "'if_none' is only for 'assignees'" in msg


REPEAT = """
process: repeat
title: Asked once
variables:
  amount: {type: money}
start: {require: [amount], to: manager}
states:
  manager:
    task:
      assignees: [{manager: requester}]
      actions: {approve: {to: branch}, reject: {to: rejected}}
  branch:
    task:
      assignees: [{head: north}]
      auto_approve_repeat: true
      actions: {approve: {to: finance}, reject: {to: rejected}}
  finance:
    task:
      role: finance
      actions: {approve: {to: approved}}
  approved: {final: true, outcome: approved}
  rejected: {final: true, outcome: rejected}
"""


def test_the_same_approver_of_two_steps_is_asked_once(tree: Org) -> None:
    out = start(REPEAT, tree, amount="5")
    out = act(REPEAT, tree, out, "cat", "approve")
    # cat heads north and is ann's manager: the branch step is approved for her
    assert out.snapshot.state == "finance"
    [auto] = [a for a in out.audit if a.action == "auto_approved"]
    assert (auto.actor, auto.from_state, auto.to_state) == ("system", "branch", "finance")
    assert auto.data["for"] == "cat" and auto.data["action"] == "approve"
    # without the opt-in she is asked again
    text = REPEAT.replace("      auto_approve_repeat: true\n", "")
    out = act(text, tree, start(text, tree, amount="5"), "cat", "approve")
    assert out.snapshot.state == "branch" and out.snapshot.tasks[0].roles == ("user:cat",)


def test_asked_once_never_overrides_four_eyes(tree: Org) -> None:
    text = REPEAT.replace("title: Asked once", "title: Asked once\nfour_eyes: true")
    out = act(text, tree, start(text, tree, amount="5"), "cat", "approve")
    assert out.snapshot.state == "branch"
    assert not [a for a in out.audit if a.action == "auto_approved"]


def test_asked_once_needs_assignees_and_an_approving_action(tree: Org) -> None:
    text = REPEAT.replace("role: finance", "role: finance\n      auto_approve_repeat: true")
    (msg,) = problems(text, tree)
    assert "'auto_approve_repeat' is only for 'assignees'" in msg
    text = REPEAT.replace(
        "actions: {approve: {to: finance}, reject: {to: rejected}}",
        "actions: {ok: {to: finance}, no: {to: rejected}}",
    )
    (msg,) = problems(text, tree)
    assert re.match(r"p\.yaml:15:\d+: auto_approve_repeat needs to know the approving action", msg)
