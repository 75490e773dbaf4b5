"""A small purchase request on the engine tests' org, for the approval operations."""

from __future__ import annotations

from datetime import timedelta

from engine.org import Org
from engine.process import CompiledProcess
from engine.records import Snapshot
from engine.runtime import Start, fire

from .conftest import NOW

BUY = """
process: buy
title: Buy
four_eyes: true
owner_role: head
variables:
  amount: {type: money}
  buyer: {type: user}
start: {require: [amount], accept: [buyer], to: vp_review}
deadline: {days: 10, until: [approved, rejected]}
cc: [{role: head}]
states:
  vp_review:
    deadline: {days: 2}
    task: {role: vp, actions: {approve: {to: board}, reject: {to: rejected}}}
  board:
    cc: [{variable: buyer}]
    task:
      roles: [gm, cfo]
      mode: all
      countersign: approve
      actions: {approve: {to: approved}, reject: {to: rejected}}
  approved: {final: true, outcome: approved}
  rejected: {final: true}
"""
LATER = NOW + timedelta(hours=1)


def started(
    proc: CompiledProcess, org: Org, user: str = "ann", on_behalf_of: str | None = None
) -> Snapshot:
    """An instance of ``proc`` started by ``user`` (ann, a clerk) with amount 5."""
    return fire(
        proc, None, Start("i1", 1, on_behalf_of), org.actor(user), {"amount": "5"}, NOW
    ).snapshot
