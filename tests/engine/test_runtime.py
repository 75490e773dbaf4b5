import copy
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from engine.errors import (
    ActionNotAllowed,
    DefinitionError,
    ExpressionError,
    InvalidData,
    StartRefused,
    WorkflowError,
)
from engine.org import Org
from engine.records import Outcome, Snapshot
from engine.runtime import Act, Start, fire

from .conftest import NOW, build

APPROVAL = """
process: approval
title: Approval
four_eyes: true
variables:
  amount: {type: money, min: 0}
  limit: {type: money}
  over_pct: {type: percent}
  note: {type: text}
  secret: {type: string, confidential: true}
start:
  require: [amount, limit]
  accept: [note]
  set: {over_pct: "(amount - limit) / limit * 100"}
  to: routing
states:
  routing:
    route:
      - {when: "over_pct <= 0", to: approved}
      - {when: "over_pct <= 30", to: vp_review}
      - {to: gm_review}
  vp_review:
    task:
      role: vp
      actions:
        approve: {to: approved}
        reject: {to: rejected, comment: required}
        raise_note: {to: vp_review, require: [note], when: "note != 'blocked'", when_message: no}
  gm_review:
    task:
      role: gm
      actions:
        approve: {to: board}
        reject: {to: rejected}
  board:
    task:
      roles: [head, cfo]
      mode: all
      countersign: approve
      actions:
        approve: {to: approved}
        reject: {to: rejected}
  approved: {final: true, outcome: approved}
  rejected: {final: true, outcome: rejected}
"""


def start(proc, org: Org, user: str = "ann", **data) -> Outcome:
    return fire(proc, None, Start("i1", 1), org.actor(user), data, NOW)


def act(proc, org, out: Outcome, user: str, action: str, comment=None, **data) -> Outcome:
    snap: Snapshot = replace(out.snapshot, row_version=out.snapshot.row_version)
    task = snap.tasks[0]
    return fire(
        proc, snap, Act(task.id, action, comment), org.actor(user), data, NOW + timedelta(hours=1)
    )


def test_route_exactly_at_boundary_goes_to_vp(org: Org) -> None:
    proc = build(APPROVAL, org)
    out = start(proc, org, amount="1300000", limit="1000000")
    assert out.snapshot.state == "vp_review"
    assert Decimal(out.snapshot.variables["over_pct"]) == 30
    assert [t.roles for t in out.opened] == [("vp",)]
    assert [a.action for a in out.audit] == ["start", "route"]
    assert out.audit[0].to_state == "routing" and out.audit[1].to_state == "vp_review"
    above = start(proc, org, amount="1300000.01", limit="1000000")
    assert above.snapshot.state == "gm_review"


def test_within_limit_completes_without_tasks(org: Org) -> None:
    proc = build(APPROVAL, org)
    out = start(proc, org, amount="5", limit="10")
    assert (out.snapshot.status, out.snapshot.outcome, out.opened) == ("completed", "approved", ())


def test_fire_is_pure_and_deterministic(org: Org) -> None:
    proc = build(APPROVAL, org)
    assert start(proc, org, amount="12", limit="10") == start(proc, org, amount="12", limit="10")


def test_firings_share_nothing_and_run_side_by_side(org: Org) -> None:
    """No lock and no shared model: threads firing on one compiled process at once get
    exactly what each would get alone (amounts route three different ways)."""
    proc = build(APPROVAL, org)
    amounts = [str(a) for a in (5, 12, 14, 20) * 25]
    alone = [start(proc, org, amount=a, limit="10") for a in amounts]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda a: start(proc, org, amount=a, limit="10"), amounts))
    finally:
        sys.setswitchinterval(switch)
    assert together == alone
    assert {o.snapshot.state for o in alone} == {"approved", "vp_review", "gm_review"}
    assert proc.machine is not None and proc.machine.models == []


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"amount": "12"}, "limit: required by start"),
        ({"amount": "abc", "limit": "1"}, "amount: expected a number"),
        ({"amount": "1.001", "limit": "1"}, "at most 2 decimal places"),
        ({"amount": "-1", "limit": "1"}, "at least 0"),
        ({"amount": "1", "limit": "1", "bogus": "x"}, "bogus: unknown variable"),
        ({"amount": "1", "limit": "1", "over_pct": "1"}, "over_pct: cannot be set by start"),
        ({"amount": 1.5, "limit": "1"}, "binary floats"),
    ],
)
def test_bad_start_input_is_refused(org: Org, data: dict, match: str) -> None:
    with pytest.raises(InvalidData, match=match):
        start(build(APPROVAL, org), org, **data)


def test_division_by_zero_is_an_error_not_a_route(org: Org) -> None:
    with pytest.raises(ExpressionError, match="division by zero"):
        start(build(APPROVAL, org), org, amount="1", limit="0")


def test_role_and_action_checks(org: Org) -> None:
    proc = build(APPROVAL, org)
    out = start(proc, org, amount="12", limit="10")
    with pytest.raises(ActionNotAllowed, match="needs role vp, which eve does not hold"):
        act(proc, org, out, "eve", "approve")
    with pytest.raises(ActionNotAllowed, match="not an action of this task; choose one of"):
        act(proc, org, out, "bob", "explode")
    with pytest.raises(ActionNotAllowed, match="a comment is required"):
        act(proc, org, out, "bob", "reject")
    with pytest.raises(ActionNotAllowed, match="^action 'raise_note' on task i1-1: no$"):
        act(proc, org, out, "bob", "raise_note", note="blocked")
    done = act(proc, org, out, "bob", "approve")
    assert done.snapshot.outcome == "approved"
    assert done.changed[0].status == "done" and done.changed[0].decided_by == "bob"
    assert done.timers_cancel_states == ("vp_review",)


def test_four_eyes_forbids_the_requester(org: Org) -> None:
    proc = build(APPROVAL, org)
    out = start(proc, org, user="bob", amount="12", limit="10")
    with pytest.raises(ActionNotAllowed, match="four-eyes rule: bob requested this"):
        act(proc, org, out, "bob", "approve")
    assert act(proc, org, out, "cat", "approve").snapshot.outcome == "approved"


def test_delegate_acts_on_behalf_of_absent_user(org: Org) -> None:
    proc = build(APPROVAL, org)
    out = start(proc, org, amount="20", limit="10")
    assert out.snapshot.state == "gm_review"
    with pytest.raises(WorkflowError, match="dan' is not active"):
        act(proc, org, out, "dan", "approve")
    nxt = act(proc, org, out, "eve", "approve")
    entry = nxt.audit[0]
    assert (entry.actor, entry.on_behalf_of, entry.action) == ("eve", "dan", "approve")


def test_countersign_needs_every_role_and_distinct_people(org: Org) -> None:
    proc = build(APPROVAL, org)
    out = act(proc, org, start(proc, org, amount="20", limit="10"), "eve", "approve")
    assert out.snapshot.state == "board"
    first = act(proc, org, out, "fay", "approve")
    assert first.snapshot.state == "board" and first.snapshot.tasks[0].pending_roles == ("head",)
    assert first.audit[0].data["waiting_for"] == ["head"]
    with pytest.raises(ActionNotAllowed, match="needs role head"):
        act(proc, org, first, "fay", "approve")
    second = act(proc, org, first, "gus", "approve")
    assert second.snapshot.outcome == "approved"
    # either reviewer can reject at once
    assert act(proc, org, out, "gus", "reject").snapshot.outcome == "rejected"


def test_act_on_completed_or_unknown_task(org: Org) -> None:
    proc = build(APPROVAL, org)
    out = start(proc, org, amount="12", limit="10")
    with pytest.raises(WorkflowError, match="unknown task 'nope'"):
        fire(proc, out.snapshot, Act("nope", "approve"), org.actor("bob"), {}, NOW)


def test_today_is_the_calendar_zone_date(org: Org) -> None:
    proc = build(
        """
process: day
title: Day
variables: {d: {type: date}}
start: {to: a, set: {d: today}}
states:
  a: {task: {role: clerk, actions: {ok: {to: b}}}}
  b: {final: true}
""",
        org,
    )
    from datetime import UTC, datetime

    early = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # 07:30 on 2 March in Shanghai
    out = fire(proc, None, Start("i9", 1), org.actor("ann"), {}, early)
    assert out.snapshot.variables["d"] == "2026-03-02"


def test_every_countersignature_must_meet_the_guard(org: Org) -> None:
    proc = build(
        """
process: cs
title: Countersign guard
variables: {ok: {type: boolean}}
start: {to: board}
states:
  board:
    task:
      roles: [head, cfo]
      mode: all
      countersign: approve
      actions:
        approve: {to: done, accept: [ok], when: "ok", when_message: "confirm with ok=true"}
        reject: {to: done}
  done: {final: true}
""",
        org,
    )
    out = start(proc, org)
    with pytest.raises(ActionNotAllowed, match="confirm with ok=true"):
        act(proc, org, out, "fay", "approve", ok="false")
    first = act(proc, org, out, "fay", "approve", ok="true")
    assert first.snapshot.tasks[0].pending_roles == ("head",)


def test_four_eyes_requester_only_lets_earlier_approvers_act_again(org: Org) -> None:
    text = APPROVAL.replace("four_eyes: true", "four_eyes: requester")
    proc = build(text, org)
    out = start(proc, org, user="ann", amount="12", limit="10")
    back = act(proc, org, out, "bob", "raise_note", note="look again")
    assert back.snapshot.state == "vp_review"
    assert act(proc, org, back, "bob", "approve").snapshot.outcome == "approved"
    strict = build(APPROVAL, org)
    out = start(strict, org, user="ann", amount="12", limit="10")
    back = act(strict, org, out, "bob", "raise_note", note="look again")
    with pytest.raises(ActionNotAllowed, match="bob already acted earlier"):
        act(strict, org, back, "bob", "approve")


def test_user_variables_must_name_a_user(org: Org) -> None:
    proc = build(
        """
process: who
title: Who
variables: {owner: {type: user}}
start: {to: a, require: [owner]}
states:
  a: {task: {role: clerk, actions: {ok: {to: b}}}}
  b: {final: true}
""",
        org,
    )
    with pytest.raises(InvalidData, match="owner: unknown user 'nobody'"):
        start(proc, org, owner="nobody")
    assert start(proc, org, owner="bob").snapshot.variables["owner"] == "bob"


def test_huge_numbers_are_refused(org: Org) -> None:
    with pytest.raises(InvalidData, match="out of range"):
        start(build(APPROVAL, org), org, amount="1e5000", limit="1")


def test_fire_never_changes_the_snapshot_it_is_given(org: Org) -> None:
    proc = build(
        """
process: clock
title: Clock
start: {to: work}
deadline: {days: 10, until: [done], paused_in: [wait]}
states:
  work: {task: {role: clerk, actions: {hold: {to: wait}, finish: {to: done}}}}
  wait: {task: {role: clerk, actions: {resume: {to: work}}}}
  done: {final: true}
""",
        org,
    )
    out = start(proc, org)
    for action in ("hold", "resume", "hold"):  # the second resume finds pauses recorded
        out = act(proc, org, out, "bob", action)
    before = copy.deepcopy(out.snapshot.meta)
    resumed = act(proc, org, out, "bob", "resume")
    assert out.snapshot.meta == before
    assert len(resumed.snapshot.meta["sla"]["pauses"]) == 2


STARTED_BY_GM = """
process: gm_start
title: GM start
start: {roles: [gm], to: a}
states:
  a: {task: {role: clerk, actions: {ok: {to: b}}}}
  b: {final: true}
"""


def test_a_delegate_starts_on_behalf_of_the_absent_requester(org: Org) -> None:
    proc = build(STARTED_BY_GM, org)
    eve = org.actor("eve")
    with pytest.raises(WorkflowError, match="eve may not start gm_start: it needs role gm"):
        fire(proc, None, Start("i1"), eve, {}, NOW)
    out = fire(proc, None, Start("i1", on_behalf_of="dan"), eve, {}, NOW)
    assert out.snapshot.requester == "dan"
    entry = out.audit[0]
    assert (entry.actor, entry.on_behalf_of, entry.action) == ("eve", "dan", "start")
    with pytest.raises(WorkflowError, match="bob does not stand in for dan"):
        fire(proc, None, Start("i2", on_behalf_of="dan"), org.actor("bob"), {}, NOW)


TERM = """
process: term
title: Term
calendar: {calendar}
variables:
  received: {{type: date}}
  due: {{type: date}}
  shown: {{type: date, live: "next_working_day(now)"}}
start:
  require: [received]
  set: {{due: "next_working_day(add_days(received, 50))"}}
  to: a
states:
  a: {{task: {{role: clerk, actions: {{ok: {{to: b}}}}}}}}
  b: {{final: true}}
"""


@pytest.mark.parametrize(
    ("received", "due"),
    [
        ("2026-08-12", "2026-10-08"),  # day 50 is 1 Oct: National Day until 7 Oct
        ("2026-08-11", "2026-09-30"),  # day 50 is a working day: it stays
        ("2026-08-21", "2026-10-10"),  # day 50 is Sat 10 Oct, a working weekend day (调休)
        ("2026-08-22", "2026-10-12"),  # day 50 is Sunday 11 Oct: Monday
    ],
)
def test_next_working_day_follows_the_process_calendar(org: Org, received: str, due: str) -> None:
    proc = build(TERM.format(calendar="cn"), org)
    out = start(proc, org, received=received)
    assert out.snapshot.variables["due"] == due


def test_next_working_day_uses_the_calendar_the_process_names(org: Org) -> None:
    from datetime import date

    from engine.calendar import WorkingCalendar
    from engine.calendarspec import CalendarSpec
    from engine.process import compile_process
    from engine.runtime import live_values
    from engine.yamlsafe import load_text

    shop = WorkingCalendar(CalendarSpec(calendar="shop", holidays=(date(2026, 9, 30),)))
    proc = compile_process(load_text(TERM.format(calendar="shop"), "p.yaml"), org, {"shop": shop})
    # plain Monday-to-Friday: 1 Oct is a working day there, 30 Sep (a shop holiday) is not
    assert start(proc, org, received="2026-08-12").snapshot.variables["due"] == "2026-10-01"
    assert start(proc, org, received="2026-08-11").snapshot.variables["due"] == "2026-10-01"
    # live values see it too; a datetime is taken on its day in the calendar's zone
    late_evening = NOW.replace(day=29, hour=23)  # Tuesday 29 Sep
    assert live_values(proc, {"received": None, "due": None}, late_evening, "ann") == {
        "shown": date(2026, 9, 29)
    }


def test_next_working_day_is_a_known_name_and_refuses_none(org: Org) -> None:
    with pytest.raises(DefinitionError, match=r"uses unknown name\(s\): next_workday"):
        build(TERM.format(calendar="cn").replace("next_working_day(add", "next_workday(add"), org)
    proc = build(TERM.format(calendar="cn").replace("add_days(received, 50)", "none"), org)
    with pytest.raises(ExpressionError, match="next_working_day needs a date, got none"):
        start(proc, org, received="2026-08-12")


GUARDED_START = """
process: guarded
title: Guarded start
variables:
  amount: {type: money}
  doubled: {type: money}
start:
  require: [amount]
  set: {doubled: "amount * 2"}
  when: "doubled <= 100"
  when_message: "at most 50 may be asked"
  to: done
states:
  done: {final: true}
"""


def test_start_when_refuses_with_its_message_after_set(org: Org) -> None:
    proc = build(GUARDED_START, org)
    actor = org.actor("bob")
    out = fire(proc, None, Start("g1", 1), actor, {"amount": "50"}, NOW)
    assert out.snapshot.status == "completed"
    with pytest.raises(StartRefused, match=r"^cannot start guarded: at most 50 may be asked$"):
        fire(proc, None, Start("g2", 1), actor, {"amount": "50.01"}, NOW)
    plain = build(GUARDED_START.replace('  when_message: "at most 50 may be asked"\n', ""), org)
    with pytest.raises(StartRefused, match="condition not met: doubled <= 100"):
        fire(plain, None, Start("g3", 1), actor, {"amount": "51"}, NOW)


def test_start_when_is_checked_as_an_expression(org: Org) -> None:
    with pytest.raises(DefinitionError, match="unknown name"):
        build(GUARDED_START.replace('when: "doubled <= 100"', 'when: "nothing <= 100"'), org)
