"""Remind now (催办): who may, and at most once an hour per task."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.errors import ActionNotAllowed, TooSoon
from engine.operations import Cc, Remind
from engine.org import Org
from engine.records import NoticeEvent
from engine.runtime import Act, fire

from .conftest import build
from .purchase import BUY, LATER, started


def test_the_requester_reminds_whoever_the_task_waits_for(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    task = snap.tasks[0]
    out = fire(proc, snap, Remind(task.id, "please"), org.actor("ann"), {}, LATER)
    [notice] = out.notices
    assert (notice.event, notice.recipients) == (NoticeEvent.remind_now, ("role:vp",))
    assert notice.data["comment"] == "please" and notice.data["actions"] == ["approve", "reject"]
    assert out.changed[0].meta["reminded_at"] == LATER.isoformat()
    assert out.audit[0].action == "remind" and out.audit[0].data["to"] == ["role:vp"]


def test_once_an_hour_per_task_with_the_time_left(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    task = snap.tasks[0]
    snap = fire(proc, snap, Remind(task.id), org.actor("ann"), {}, LATER).snapshot
    soon = LATER + timedelta(minutes=23)
    with pytest.raises(ActionNotAllowed, match="ann reminded them at 11:00.*try again in 37 min"):
        fire(proc, snap, Remind(task.id), org.actor("ann"), {}, soon)
    with pytest.raises(TooSoon, match="try again in 37 min") as refused:
        fire(proc, snap, Remind(task.id), org.actor("ann"), {}, soon)
    assert refused.value.retry_after == 37 * 60  # the seconds left, for Retry-After
    with pytest.raises(TooSoon, match="try again in 1 min") as refused:
        fire(proc, snap, Remind(task.id), org.actor("gus"), {}, LATER + timedelta(seconds=3599))
    assert refused.value.retry_after == 1
    again = fire(proc, snap, Remind(task.id), org.actor("ann"), {}, LATER + timedelta(hours=1))
    assert again.notices[0].event == NoticeEvent.remind_now


def test_who_may_remind(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    task = snap.tasks[0]
    fire(proc, snap, Remind(task.id), org.actor("gus"), {}, LATER)  # owner_role: head
    for user in ("bob", "fay"):  # an approver, a stranger
        with pytest.raises(ActionNotAllowed, match=f"{user} may not"):
            fire(proc, snap, Remind(task.id), org.actor(user), {}, LATER)
    copied = fire(proc, snap, Cc(("fay",)), org.actor("ann"), {}, LATER).snapshot
    fire(proc, copied, Remind(task.id), org.actor("fay"), {}, LATER)  # a reader may


def test_a_decided_task_cannot_be_reminded(org: Org) -> None:
    proc = build(BUY, org)
    snap = started(proc, org)
    task = snap.tasks[0]
    done = fire(proc, snap, Act(task.id, "reject"), org.actor("bob"), {}, LATER).snapshot
    with pytest.raises(Exception, match="unknown task"):
        fire(proc, done, Remind(task.id), org.actor("ann"), {}, LATER)
