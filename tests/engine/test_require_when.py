"""``require_when``: a variable required only when a condition on the step's values holds
(e.g. the reply to a superior body, only for complaints a superior body forwarded)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from engine.errors import DefinitionError, ExpressionError, InvalidData
from engine.operations import Rollback
from engine.org import Org
from engine.process import RESUBMIT
from engine.records import Outcome
from engine.runtime import Act, Start, fire

from .conftest import NOW, build

PROC = """
process: forwarded
title: Forwarded
variables:
  source: {type: enum, values: [customer, superior], default: customer}
  superior_body: {type: string}
  reply: {type: text}
  count: {type: integer}
start:
  accept: [source]
  require_when: {superior_body: "source == 'superior'"}
  to: handling
states:
  handling:
    task:
      role: clerk
      actions:
        close:
          to: done
          accept: [count]
          require_when: {reply: "source == 'superior'"}  # reply is accepted too
        bad: {to: done, require_when: {reply: "count > 1"}}
  done: {final: true}
"""


def start(org: Org, **data: str) -> Outcome:
    return fire(build(PROC, org), None, Start("i1", 1), org.actor("ann"), data, NOW)


def act(org: Org, out: Outcome, action: str, **data: str) -> Outcome:
    task = out.snapshot.tasks[0]
    later = NOW + timedelta(hours=1)
    return fire(build(PROC, org), out.snapshot, Act(task.id, action), org.actor("ann"), data, later)


def test_required_only_when_the_condition_holds_at_start(org: Org) -> None:
    assert start(org).snapshot.state == "handling"  # default source: customer
    with pytest.raises(
        InvalidData,
        match=r"superior_body: required by start when source == 'superior': give it with --set",
    ):
        start(org, source="superior")
    out = start(org, source="superior", superior_body="上级单位")
    assert out.snapshot.variables["superior_body"] == "上级单位"


def test_the_condition_sees_this_steps_input_and_earlier_values_count(org: Org) -> None:
    customer = start(org)
    assert act(org, customer, "close").snapshot.status == "completed"
    superior = start(org, source="superior", superior_body="x")
    with pytest.raises(InvalidData, match=r"reply: required by action 'close' when source =="):
        act(org, superior, "close")
    with pytest.raises(InvalidData, match="reply: required"):
        act(org, superior, "close", count="2")
    done = act(org, superior, "close", reply="已回复")
    assert (done.snapshot.status, done.snapshot.variables["reply"]) == ("completed", "已回复")
    # a value given earlier counts, as with require
    given = replace(superior.snapshot, variables={**superior.snapshot.variables, "reply": "r"})
    assert act(org, replace(superior, snapshot=given), "close").snapshot.status == "completed"


def test_a_condition_that_fails_is_a_refusal_not_a_pass(org: Org) -> None:
    out = start(org)
    with pytest.raises(ExpressionError, match="not supported between"):
        act(org, out, "bad")  # count is none: 'none > 1' is an error, never true or false


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("{reply: \"source == 'superior'\"}", None),
        ("{nope: \"source == 'superior'\"}", "unknown variable 'nope'"),
        ("{reply: \"sourze == 'superior'\"}", "uses unknown name(s): sourze"),
        ('{reply: "source =="}', "expression 'source =='"),
    ],
)
def test_validation(org: Org, edit: str, message: str | None) -> None:
    text = PROC.replace("{reply: \"source == 'superior'\"}", edit)
    if message is None:
        build(text, org)
        return
    with pytest.raises(DefinitionError) as exc:
        build(text, org)
    assert message in str(exc.value)
    assert "p.yaml:" in str(exc.value)


def test_a_variable_required_always_cannot_also_be_required_when(org: Org) -> None:
    text = PROC.replace("accept: [source]", "accept: [source]\n  require: [superior_body]")
    with pytest.raises(DefinitionError, match="is in require already"):
        build(text, org)


def test_a_resubmission_checks_the_start_condition_again(org: Org) -> None:
    """Sent back to the requester, who switches the source to superior: the body is needed."""
    proc = build(PROC, org)
    out = start(org)
    task = out.snapshot.tasks[0]
    back = fire(
        proc, out.snapshot, Rollback(task.id, "start", "wrong source"), org.actor("ann"), {}, NOW
    )
    resubmit = back.snapshot.tasks[0]
    assert back.snapshot.state == RESUBMIT
    later = NOW + timedelta(minutes=5)
    with pytest.raises(InvalidData, match="superior_body: required by resubmit when source =="):
        fire(
            proc,
            back.snapshot,
            Act(resubmit.id, "resubmit"),
            org.actor("ann"),
            {"source": "superior"},
            later,
        )
    data = {"source": "superior", "superior_body": "市局"}
    again = fire(proc, back.snapshot, Act(resubmit.id, "resubmit"), org.actor("ann"), data, later)
    assert (again.snapshot.state, again.snapshot.variables["superior_body"]) == ("handling", "市局")
