"""Reminders in working days and deadlines at a time of day (`before: {working_days: N}`,
`at: "HH:MM"`), in the process calendar and its zone.

Expected instants are worked out by hand from the 2026 Chinese calendar (National Day
1-7 Oct off, Sun 20 Sep and Sat 10 Oct worked; Spring Festival 15-23 Feb off, Sat 14 and
Sat 28 Feb worked) and, for daylight saving, New York's 2026 changes (8 Mar, 1 Nov).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.calendar import WorkingCalendar
from engine.calendarspec import CalendarSpec
from engine.errors import DefinitionError
from engine.org import Org
from engine.process import SLA, compile_process
from engine.runtime import TimerFired, fire
from engine.yamlsafe import load_text
from tests.scenario import SYSTEM

from .conftest import build
from .test_deadlines import Run, at

NY = ZoneInfo("America/New_York")


def process(deadline: str, *, variables: str = "") -> str:
    """A one-task process whose task state has ``deadline`` (YAML flow mapping)."""
    return f"""
process: remind
title: Remind
calendar: {{calendar}}
variables:
  gap: {{type: integer}}
  n: {{type: integer}}
{variables}
start: {{accept: [gap, n], to: work}}
states:
  work:
    deadline: {deadline}
    task:
      role: clerk
      actions:
        done: {{to: ok}}
  ok: {{final: true}}
"""


def compiled(org: Org, deadline: str, calendar: WorkingCalendar | None = None) -> Run:
    text = process(deadline).replace("{calendar}", calendar.name if calendar else "cn")
    calendars = {calendar.name: calendar} if calendar else None
    return Run(compile_process(load_text(text, "p.yaml"), org, calendars), org)


WORKING_DAY_BEFORE = """
      working_days: 3
      at: "17:30"
      reminders: [{before: {working_days: 1}, at: "09:00"}]
      escalations: [{after: {working_days: 1}, at: "09:00", notify: [vp]}]"""


@pytest.mark.parametrize(
    ("opened", "due", "remind", "escalate"),
    [
        # an ordinary week: 13, 14, 15 Oct
        ("2026-10-12 10:00", "2026-10-15 17:30", "2026-10-14 09:00", "2026-10-16 09:00"),
        # across a weekend: 16, 19, 20 Oct; the reminder is on Monday, not Sunday
        ("2026-10-15 10:00", "2026-10-20 17:30", "2026-10-19 09:00", "2026-10-21 09:00"),
        # across National Day: 29, 30 Sep, 8 Oct; reminded on 30 Sep, before the holiday
        ("2026-09-28 10:00", "2026-10-08 17:30", "2026-09-30 09:00", "2026-10-09 09:00"),
        # the worked Saturday 10 Oct is a working day: 8, 9, 10 Oct; escalated Mon 12 Oct
        ("2026-09-30 10:00", "2026-10-10 17:30", "2026-10-09 09:00", "2026-10-12 09:00"),
        # the worked Sunday 20 Sep (调休): 18, 20, 21 Sep; reminded on that Sunday
        ("2026-09-17 10:00", "2026-09-21 17:30", "2026-09-20 09:00", "2026-09-22 09:00"),
        # Spring Festival: 13, 14 (a worked Saturday), 24 Feb; reminded on Sat 14 Feb
        ("2026-02-12 10:00", "2026-02-24 17:30", "2026-02-14 09:00", "2026-02-25 09:00"),
        # opened during the holiday: 8, 9, 10 Oct
        ("2026-10-03 15:00", "2026-10-10 17:30", "2026-10-09 09:00", "2026-10-12 09:00"),
    ],
)
def test_reminder_at_nine_the_working_day_before(
    org: Org, opened: str, due: str, remind: str, escalate: str
) -> None:
    run = compiled(org, WORKING_DAY_BEFORE)
    run.start("ann", at(opened))
    assert run.task.due_at == at(due)
    assert run.pending("work") == [
        ("deadline", at(due)),
        ("escalation", at(escalate)),
        ("reminder", at(remind)),
    ]
    assert run.advance(at(remind) - timedelta(minutes=1)) == []
    assert [t.kind for t in run.advance(at(remind))] == ["reminder"]


def test_the_reminder_fires_at_nine_and_not_a_minute_before(org: Org) -> None:
    run = compiled(org, WORKING_DAY_BEFORE)
    run.start("ann", at("2026-09-28 10:00"))
    assert run.advance(at("2026-09-30 08:59")) == []
    [fired] = run.advance(at("2026-09-30 09:00"))
    assert fired.kind == "reminder" and fired.id == f"{run.task.id}:remind:0"
    [notice] = [n for n in run.notices if n.event == "reminder"]
    assert notice.recipients == ("role:clerk",)
    assert notice.data["due_at"] == at("2026-10-08 17:30").isoformat()
    assert [t.kind for t in run.advance(at("2026-10-08 17:30"))] == ["deadline"]
    assert [t.kind for t in run.advance(at("2026-10-09 09:00"))] == ["escalation"]


def test_timer_ids_are_the_same_whenever_the_step_is_computed(org: Org) -> None:
    """Storage keys timers by id: the same step computed twice sets the same timers."""
    run = compiled(org, WORKING_DAY_BEFORE)
    run.start("ann", at("2026-10-12 10:00"))
    task = run.task.id
    assert set(run.timers) == {f"{task}:due", f"{task}:remind:0", f"{task}:escalate:1"}
    first = run.stored.outcomes[0].timers_set
    again = compiled(org, WORKING_DAY_BEFORE)
    again.start("ann", at("2026-10-12 10:00"))
    assert again.stored.outcomes[0].timers_set == first


def test_without_at_a_working_day_reminder_keeps_the_deadlines_time_of_day(org: Org) -> None:
    run = compiled(org, "{working_days: 3, reminders: [{before: {working_days: 1}}]}")
    run.start("ann", at("2026-10-15 10:00"))  # 16, 19, 20 Oct: due at 24:00 on Tue 20
    assert run.pending("work") == [
        ("deadline", at("2026-10-21 00:00")),
        ("reminder", at("2026-10-20 00:00")),  # 24:00 on Mon 19, not on Sunday
    ]


def test_calendar_days_before_at_a_time_do_not_move_off_a_weekend(org: Org) -> None:
    run = compiled(org, '{days: 3, at: "12:00", reminders: [{before: {days: 1}, at: "09:00"}]}')
    run.start("ann", at("2026-10-15 10:00"))  # day 3 is Sun 18 Oct: moves to Mon 19
    assert run.pending("work") == [
        ("deadline", at("2026-10-19 12:00")),
        ("reminder", at("2026-10-18 09:00")),  # one calendar day before, as written
    ]


def test_a_reminder_already_past_is_not_set_not_even_at_that_very_minute(org: Org) -> None:
    deadline = (
        '{working_days: 1, at: "17:30", reminders: [{before: {working_days: 1}, at: "09:00"}]}'
    )
    for opened, expected in (
        ("2026-10-15 08:59", [("deadline", "2026-10-16 17:30"), ("reminder", "2026-10-15 09:00")]),
        ("2026-10-15 09:00", [("deadline", "2026-10-16 17:30")]),
        ("2026-10-15 10:00", [("deadline", "2026-10-16 17:30")]),
    ):
        run = compiled(org, deadline)
        run.start("ann", at(opened))
        assert run.pending("work") == [(k, at(t)) for k, t in expected], opened
        assert [a.action for a in run.audit] == ["start"]  # past: silently not set


def test_the_same_day_reminder_before_a_deadline_at_a_time(org: Org) -> None:
    run = compiled(
        org, '{working_days: 2, at: "17:30", reminders: [{before: {working_days: 0}, at: "17:29"}]}'
    )
    run.start("ann", at("2026-10-15 10:00"))  # 16, 19 Oct
    assert ("reminder", at("2026-10-19 17:29")) in run.pending("work")
    assert [t.kind for t in run.advance(at("2026-10-19 17:30"))] == ["reminder", "deadline"]


@pytest.mark.parametrize(
    ("deadline", "message"),
    [
        # exactly at the deadline: not a reminder
        (
            '{working_days: 2, at: "17:30", reminders: [{before: {working_days: 0}, at: "17:30"}]}',
            "would come at 17:30 on the deadline's own day, not before the deadline at 17:30",
        ),
        (
            '{days: 2, at: "12:00", reminders: [{before: {days: 0}, at: "15:00"}]}',
            "would come at 15:00 on the deadline's own day, not before the deadline at 12:00",
        ),
        # without `at` a working-day reminder takes the deadline's time: 0 days is the deadline
        (
            "{working_days: 2, reminders: [{before: {working_days: 0}}]}",
            "would come at 24:00 on the deadline's own day, not before the deadline at 24:00",
        ),
        # N larger than the period: before the task even opens
        (
            '{working_days: 3, reminders: [{before: {working_days: 4}, at: "09:00"}]}',
            "4 working days before a deadline of 3 working days falls before the period",
        ),
    ],
)
def test_reminders_that_cannot_come_before_the_deadline_are_refused_at_load(
    org: Org, deadline: str, message: str
) -> None:
    with pytest.raises(DefinitionError, match=r"p\.yaml:\d+:\d+: .*" + message.replace("(", r"\(")):
        compiled(org, deadline)


def test_at_and_before_the_deadline_on_its_day_are_accepted(org: Org) -> None:
    """The other side of each refusal above: one minute earlier, or N equal to the period."""
    compiled(
        org, '{working_days: 2, at: "17:30", reminders: [{before: {working_days: 0}, at: "17:29"}]}'
    )
    compiled(org, '{working_days: 2, reminders: [{before: {working_days: 0}, at: "23:59"}]}')
    run = compiled(org, '{working_days: 3, reminders: [{before: {working_days: 3}, at: "09:00"}]}')
    run.start("ann", at("2026-10-12 08:00"))  # 3 working days before Thu 15 is Mon 12
    assert ("reminder", at("2026-10-12 09:00")) in run.pending("work")


def test_a_reminder_computed_at_or_after_its_deadline_is_skipped_with_an_audit_entry(
    org: Org,
) -> None:
    run = compiled(
        org,
        '{working_days: 2, at: "17:30", reminders: [{before: {working_days: gap}, at: "18:00"}]}',
    )
    out = run.start("ann", at("2026-10-15 10:00"), gap=0)
    assert run.pending("work") == [("deadline", at("2026-10-19 17:30"))]
    [note] = [a for a in out.audit if a.action == "reminder_not_set"]
    assert note.data == {
        "timer": f"{run.task.id}:remind:0",
        "state": "work",
        "remind_at": at("2026-10-19 18:00").isoformat(),
        "due_at": at("2026-10-19 17:30").isoformat(),
        "reason": "the reminder would not come before the deadline",
    }
    again = compiled(
        org,
        '{working_days: 2, at: "17:30", reminders: [{before: {working_days: gap}, at: "18:00"}]}',
    )
    out = again.start("ann", at("2026-10-15 10:00"), gap=1)  # Fri 16 Oct 18:00
    assert ("reminder", at("2026-10-16 18:00")) in again.pending("work")
    assert "reminder_not_set" not in [a.action for a in out.audit]


def test_n_larger_than_a_computed_period_is_simply_past(org: Org) -> None:
    run = compiled(org, '{working_days: n, reminders: [{before: {working_days: 5}, at: "09:00"}]}')
    run.start("ann", at("2026-10-12 10:00"), n=1)
    assert run.pending("work") == [("deadline", at("2026-10-14 00:00"))]


def test_an_escalation_at_a_time_is_never_before_its_deadline(org: Org) -> None:
    run = compiled(
        org,
        '{working_days: 1, at: "17:30", escalations: '
        '[{after: {working_days: 0}, at: "09:00", notify: [vp]}, '
        '{after: {working_days: 0}, at: "18:00", notify: [vp]}]}',
    )
    run.start("ann", at("2026-10-15 10:00"))
    assert run.pending("work") == [
        ("deadline", at("2026-10-16 17:30")),
        ("escalation", at("2026-10-16 17:30")),  # 09:00 that day is before: at the deadline
        ("escalation", at("2026-10-16 18:00")),
    ]


def test_a_same_day_deadline_at_a_time(org: Org) -> None:
    """0 working days at 17:30: today by 17:30; on a day off, the next working day."""
    run = compiled(org, '{working_days: n, at: "17:30"}')
    run.start("ann", at("2026-10-15 10:00"), n=0)
    assert run.task.due_at == at("2026-10-15 17:30")
    run = compiled(org, '{working_days: n, at: "17:30"}')
    run.start("ann", at("2026-10-17 10:00"), n=0)  # a Saturday
    assert run.task.due_at == at("2026-10-19 17:30")


@pytest.mark.parametrize(
    ("deadline", "message"),
    [
        ('{working_days: 1, at: "9:00"}', 'must be a time of day written "HH:MM"'),
        ('{working_days: 1, at: "24:00"}', 'must be a time of day written "HH:MM"'),
        ('{working_days: 1, at: "17:60"}', 'must be a time of day written "HH:MM"'),
        ('{hours: 8, at: "17:30"}', "'at' needs the deadline in days or working_days"),
        (
            '{hours: 8, reminders: [{before: {hours: 2}, at: "09:00"}]}',
            "'at' needs 'before' in days or working_days",
        ),
        (
            '{days: 1, escalations: [{at: "09:00", notify: [vp]}]}',
            "'at' needs 'after' in days or working_days",
        ),
        (
            '{days: 1, escalations: [{after: {hours: 1}, at: "09:00", notify: [vp]}]}',
            "'at' needs 'after' in days or working_days",
        ),
    ],
)
def test_bad_at_is_refused_with_its_place(org: Org, deadline: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=r"p\.yaml:\d+:\d+: .*" + message):
        compiled(org, deadline)


def test_an_instance_deadline_at_a_time_and_its_extension_keep_the_time(org: Org) -> None:
    text = """
process: sla_at
title: SLA at a time
variables:
  more: {type: integer}
start: {to: work}
deadline:
  working_days: 3
  at: "17:30"
  until: [ok]
  reminders: [{before: {working_days: 1}, at: "09:00"}]
states:
  work:
    task:
      role: clerk
      actions:
        extend:
          to: work
          accept: [more]
          extend: {by: {working_days: more}, max_times: 1}
        done: {to: ok}
  ok: {final: true}
"""
    run = Run(build(text, org), org)
    run.start("ann", at("2026-09-28 10:00"))  # 29, 30 Sep, 8 Oct
    assert run.sla["due_at"] == at("2026-10-08 17:30").isoformat()
    assert run.pending(SLA) == [
        ("deadline", at("2026-10-08 17:30")),
        ("reminder", at("2026-09-30 09:00")),
    ]
    run.act("bob", "extend", at("2026-09-29 10:00"), more=2)  # 9, 10 Oct: still at 17:30
    assert run.sla["due_at"] == at("2026-10-10 17:30").isoformat()
    assert run.pending(SLA) == [
        ("deadline", at("2026-10-10 17:30")),
        ("reminder", at("2026-10-09 09:00")),
    ]


def test_a_stale_working_day_reminder_is_skipped_like_any_other(org: Org) -> None:
    run = compiled(org, WORKING_DAY_BEFORE)
    run.start("ann", at("2026-10-12 10:00"))
    reminder = next(t for t in run.timers.values() if t.kind == "reminder")
    run.act("ann", "done", at("2026-10-12 11:00"))
    out = fire(run.proc, run.snap, TimerFired(reminder), SYSTEM, {}, at("2026-10-14 09:00"))
    assert [a.action for a in out.audit] == ["reminder_skipped"] and out.notices == ()


# ---------------------------------------------------------------- a zone with daylight saving


@pytest.fixture
def new_york() -> WorkingCalendar:
    """A plain Monday-to-Friday calendar in New York (no holidays: none are needed here)."""
    return WorkingCalendar(CalendarSpec(calendar="ny", timezone="America/New_York"))


def test_wall_clock_times_hold_across_daylight_saving(org: Org, new_york: WorkingCalendar) -> None:
    run = compiled(
        org,
        '{working_days: 2, at: "17:30", reminders: ['
        '{before: {working_days: 1}, at: "09:00"}, {before: {days: 1}, at: "09:00"}]}',
        new_york,
    )
    run.start("ann", datetime(2026, 3, 5, 10, 0, tzinfo=NY))  # Thu; clocks go forward Sun 8
    due = run.task.due_at
    assert due is not None
    assert due.astimezone(NY).isoformat() == "2026-03-09T17:30:00-04:00"  # Mon, EDT
    reminders = [t.due_at.astimezone(NY) for t in run.stored.pending() if t.kind == "reminder"]
    assert sorted(t.isoformat() for t in reminders) == [
        "2026-03-06T09:00:00-05:00",  # Fri, still EST
        "2026-03-08T09:00:00-04:00",  # Sun, the day of the change: 09:00 on the wall clock
    ]


def test_a_time_the_clock_skips_or_repeats(new_york: WorkingCalendar) -> None:
    skipped = new_york.at_clock(date(2026, 3, 8), time(2, 30))
    assert skipped.isoformat() == "2026-03-08T03:30:00-04:00"  # 02:30 EST does not exist
    repeated = new_york.at_clock(date(2026, 11, 1), time(1, 30))
    assert repeated.isoformat() == "2026-11-01T01:30:00-04:00"  # the first 01:30 (EDT)


def test_working_days_before_counts_back_over_holidays_and_years(org: Org) -> None:
    cal = compiled(org, "{working_days: 1}").proc.calendar
    assert cal.working_days_before(date(2026, 10, 8), 1) == date(2026, 9, 30)
    assert cal.working_days_before(date(2026, 10, 8), 3) == date(2026, 9, 28)  # Sun 27 off
    assert cal.working_days_before(date(2026, 9, 21), 1) == date(2026, 9, 20)  # worked Sunday
    assert cal.working_days_before(date(2026, 2, 24), 1) == date(2026, 2, 14)  # worked Saturday
    assert cal.working_days_before(date(2026, 1, 5), 2) == date(
        2025, 12, 31
    )  # 1-3 Jan off, Sun 4 worked
    assert cal.working_days_before(date(2026, 10, 4), 0) == date(2026, 9, 30)  # a holiday
    assert cal.working_days_before(date(2026, 10, 9), 0) == date(2026, 10, 9)


def test_a_deadline_in_hours_decides_at_run_time_whether_the_reminder_comes_first(
    org: Org,
) -> None:
    deadline = '{hours: 8, reminders: [{before: {working_days: 0}, at: "09:00"}]}'
    run = compiled(org, deadline)
    out = run.start("ann", at("2026-10-12 00:30"))  # due 08:30: 09:00 that day is too late
    assert run.pending("work") == [("deadline", at("2026-10-12 08:30"))]
    [note] = [a for a in out.audit if a.action == "reminder_not_set"]
    assert note.data["remind_at"] == at("2026-10-12 09:00").isoformat()
    run = compiled(org, '{hours: 32, reminders: [{before: {working_days: 0}, at: "09:00"}]}')
    run.start("ann", at("2026-10-16 08:00"))  # due Sat 16:00, a day off: reminded Fri 09:00
    assert run.pending("work") == [
        ("deadline", at("2026-10-17 16:00")),
        ("reminder", at("2026-10-16 09:00")),
    ]
    run = compiled(org, deadline)
    run.start("ann", at("2026-10-12 06:00"))  # due 14:00: reminded at 09:00
    assert run.pending("work") == [
        ("deadline", at("2026-10-12 14:00")),
        ("reminder", at("2026-10-12 09:00")),
    ]
