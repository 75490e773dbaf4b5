"""Working calendars: the Civil Code worked examples, properties, and calendar files.

The 2026 dates below are the State Council's 2026 notice as the ``holidays`` package (0.109)
carries it: New Year 1-3 Jan (Sun 4 Jan worked); Spring Festival 15-23 Feb (Sat 14 Feb and
Sat 28 Feb worked); Qingming 4-6 Apr; Labour Day 1-5 May (Sat 9 May worked); Dragon Boat
19 Jun; Mid-Autumn 25 Sep; National Day 1-7 Oct (Sun 20 Sep and Sat 10 Oct worked).
"""

from __future__ import annotations

import time as clock
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.calendar import WorkingCalendar, default_calendar
from engine.calendarspec import CalendarSpec, load_calendar
from engine.errors import DefinitionError
from engine.yamlsafe import load_text

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
CAL = default_calendar()
CAL_BH = WorkingCalendar(
    CalendarSpec.model_validate(
        {
            "calendar": "office",
            "based_on": "CN",
            "business_hours": {"start": "09:00", "end": "17:30"},
        }
    )
)
PLAIN = WorkingCalendar(CalendarSpec(calendar="plain", timezone="UTC"))


def sh(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SH)


def load(text: str) -> WorkingCalendar:
    return WorkingCalendar(load_calendar(load_text(text, "cal.yaml")))


# --------------------------------------------------------------------------- worked examples


def test_national_day_complaint_three_and_five_working_days() -> None:
    received = sh(2026, 9, 30, 10)
    # 1-7 Oct off; 8 Oct (Thu) is working day 1, 9 Oct day 2, Sat 10 Oct (调休) day 3
    assert CAL.add_working_days(received, 3) == sh(2026, 10, 11)  # 24:00 on 10 Oct
    # Sun 11 Oct off; Mon 12 Oct day 4, Tue 13 Oct day 5
    assert CAL.add_working_days(received, 5) == sh(2026, 10, 14)
    assert CAL.add(received, 3, "working_days") == sh(2026, 10, 11)


def test_national_day_with_business_hours_ends_at_close_of_business() -> None:
    received = sh(2026, 9, 30, 10)
    assert CAL_BH.add_working_days(received, 3) == sh(2026, 10, 10, 17, 30)
    assert CAL_BH.add_working_days(received, 5) == sh(2026, 10, 13, 17, 30)
    # receiving the complaint after hours does not change the day counting starts
    assert CAL_BH.add_working_days(sh(2026, 9, 30, 23, 59), 3) == sh(2026, 10, 10, 17, 30)


def test_spring_festival_2026_schedule_matches_the_package() -> None:
    for day in range(15, 24):
        assert not CAL.is_working_day(date(2026, 2, day)), day
    assert CAL.is_working_day(date(2026, 2, 14))  # Saturday, declared working
    assert CAL.is_working_day(date(2026, 2, 28))  # Saturday, declared working
    assert not CAL.is_working_day(date(2026, 2, 21))  # Saturday inside the break
    assert CAL.is_working_day(date(2026, 2, 13))
    assert CAL.is_working_day(date(2026, 2, 24))
    assert CAL.working_weekend_days(2026) == [
        date(2026, 1, 4),
        date(2026, 2, 14),
        date(2026, 2, 28),
        date(2026, 5, 9),
        date(2026, 9, 20),
        date(2026, 10, 10),
    ]
    off = dict(CAL.non_working_days(2026))
    assert off[date(2026, 2, 17)] == "春节"
    assert off[date(2026, 2, 16)] == "农历除夕"
    assert date(2026, 2, 20) in off and date(2026, 2, 23) in off
    assert date(2026, 2, 21) not in off  # plain weekends are not listed


def test_spring_festival_2026_counting() -> None:
    before = sh(2026, 2, 13, 15)  # Friday before the break
    assert CAL.add_working_days(before, 1) == sh(2026, 2, 15)  # Sat 14 Feb is working
    assert CAL.add_working_days(before, 2) == sh(2026, 2, 25)  # next is Tue 24 Feb
    # 24, 25, 26, 27 Feb and Sat 28 Feb (declared working) are days 1-5
    assert CAL.add_working_days(sh(2026, 2, 16, 9), 5) == sh(2026, 3, 1)
    # a 10-day period ending in the break (Mon 23 Feb) moves to Tue 24 Feb
    assert CAL.add_days(before, 10) == sh(2026, 2, 25)


def test_sixty_days() -> None:
    # 60 days after 1 Jun 2026 is Fri 31 Jul, a working day: ends 24:00 that day
    assert CAL.add_days(sh(2026, 6, 1, 11), 60) == sh(2026, 8, 1)
    # 60 days after 2 Mar 2026 is 1 May (Labour Day); 1-5 May are off, so 6 May
    assert CAL.add_days(sh(2026, 3, 2, 11), 60) == sh(2026, 5, 7)
    assert CAL_BH.add_days(sh(2026, 3, 2, 11), 60) == sh(2026, 5, 6, 17, 30)
    assert CAL.add(sh(2026, 3, 2, 11), Decimal("60"), "days") == sh(2026, 5, 7)


def test_days_period_ending_on_plain_weekend_or_working_weekend() -> None:
    # 30 days after Wed 10 Sep is Sat 10 Oct 2026, a declared working day: no move
    assert CAL.add_days(sh(2026, 9, 10, 9), 30) == sh(2026, 10, 11)
    # 30 days after Fri 11 Sep is Sun 11 Oct, a day off: moves to Mon 12 Oct
    assert CAL.add_days(sh(2026, 9, 11, 9), 30) == sh(2026, 10, 13)
    # ending on National Day moves past the whole break, to Thu 8 Oct
    assert CAL.add_days(sh(2026, 9, 30, 9), 1) == sh(2026, 10, 9)


def test_start_is_taken_in_the_calendar_time_zone() -> None:
    # 20:00 UTC on 30 Sep is 04:00 on 1 Oct in Shanghai: counting starts 2 Oct
    start = datetime(2026, 9, 30, 20, tzinfo=UTC)
    assert CAL.event_day(start) == date(2026, 10, 1)
    assert CAL.add_days(start, 1) == sh(2026, 10, 9)
    assert CAL.add_working_days(start, 1).tzinfo == SH
    assert CAL.add_working_days(datetime(2026, 9, 30, 1, tzinfo=UTC), 1) == sh(2026, 10, 9)


def test_midnight_is_24_00_of_the_previous_day() -> None:
    assert CAL.event_day(sh(2026, 10, 1)) == date(2026, 9, 30)
    assert CAL.add_working_days(sh(2026, 10, 1), 3) == sh(2026, 10, 11)
    assert CAL.add_working_days(sh(2026, 10, 1, 0, 1), 3) == sh(2026, 10, 11)  # 1 Oct is off
    assert CAL.add_working_days(sh(2026, 10, 9), 1) == sh(2026, 10, 9) + timedelta(days=1)
    assert CAL.add_working_days(sh(2026, 10, 9, 0, 0) + timedelta(microseconds=1), 1) == sh(
        2026, 10, 11
    )


def test_zero_is_due_at_once_and_negative_is_refused() -> None:
    start = datetime(2026, 9, 30, 2, tzinfo=UTC)
    for unit in ("working_days", "days", "hours"):
        assert CAL.add(start, 0, unit) == start  # type: ignore[arg-type]
        assert CAL.add(start, 0, unit).tzinfo == SH  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        CAL.add_working_days(start, -1)
    with pytest.raises(ValueError, match=">= 0"):
        CAL.add_days(start, -1)
    with pytest.raises(ValueError, match=">= 0"):
        CAL.add_hours(start, -1)
    with pytest.raises(TypeError):
        CAL.add_working_days(start, True)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        CAL.add_working_days(datetime(2026, 9, 30, 10), 3)
    with pytest.raises(ValueError, match="time zone"):
        CAL.add_hours(datetime(2026, 9, 30, 10), 3)


def test_hours_are_elapsed_time() -> None:
    assert CAL.add_hours(sh(2026, 9, 30, 22), 4) == sh(2026, 10, 1, 2)  # holidays ignored
    assert CAL.add_hours(sh(2026, 9, 30, 22), Decimal("1.5")) == sh(2026, 9, 30, 23, 30)
    assert CAL.add(sh(2026, 9, 30, 22), Decimal("0.001"), "hours") == sh(
        2026, 9, 30, 22
    ) + timedelta(seconds=3.6)
    # across the US spring-forward: 24 elapsed hours are 25 wall-clock hours later
    us = WorkingCalendar(CalendarSpec(calendar="us", timezone="America/New_York"))
    start = datetime(2026, 3, 7, 12, tzinfo=NY)
    end = us.add_hours(start, 24)
    # (subtracting two datetimes of one zone is wall-clock arithmetic: compare in UTC)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=24)
    assert end.replace(tzinfo=None) == datetime(2026, 3, 8, 13)


def test_add_refuses_unknown_units_and_fractional_days() -> None:
    with pytest.raises(ValueError, match="unknown unit"):
        CAL.add(sh(2026, 9, 30), 1, "weeks")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whole number"):
        CAL.add(sh(2026, 9, 30), Decimal("1.5"), "working_days")


def test_business_hours_in_a_daylight_saving_zone() -> None:
    spec = CalendarSpec.model_validate(
        {
            "calendar": "ny",
            "timezone": "America/New_York",
            "business_hours": {"start": "09:00", "end": "17:00"},
        }
    )
    ny = WorkingCalendar(spec)
    # Fri 6 Mar 2026 + 1 working day = Mon 9 Mar, after the clocks changed (EDT, -04:00)
    result = ny.add_working_days(datetime(2026, 3, 6, 10, tzinfo=NY), 1)
    assert result == datetime(2026, 3, 9, 17, tzinfo=NY)
    assert result.utcoffset() == timedelta(hours=-4)


def test_plain_calendar_counts_monday_to_friday() -> None:
    assert PLAIN.is_working_day(date(2026, 10, 1))  # no holidays at all
    assert not PLAIN.is_working_day(date(2026, 10, 10))
    assert PLAIN.add_working_days(datetime(2026, 10, 9, 12, tzinfo=UTC), 1) == datetime(
        2026, 10, 13, tzinfo=UTC
    )
    assert PLAIN.year_known(2099) and PLAIN.warnings_for(date(2026, 1, 1), date(2099, 1, 1)) == []
    assert PLAIN.non_working_days(2026) == [] and PLAIN.working_weekend_days(2026) == []


# --------------------------------------------------------------------------- known years


def test_package_knows_2001_to_2026_and_not_2027() -> None:
    assert all(CAL.year_known(y) for y in range(2001, 2027))
    assert not CAL.year_known(2000)
    assert not CAL.year_known(2027)
    assert CAL.working_weekend_days(2027) == []


def test_is_working_day_agrees_with_the_package_in_known_years() -> None:
    package = holidays.country_holidays("CN")
    day = date(2001, 1, 1)
    while day.year <= 2026:
        assert CAL.is_working_day(day) == package.is_working_day(day), day
        day += timedelta(days=1)


def test_cross_year_working_weekend_is_kept() -> None:
    # the 2007 notice made Sat 30 and Sun 31 Dec 2006 working days
    assert CAL.working_weekend_days(2006)[-2:] == [date(2006, 12, 30), date(2006, 12, 31)]
    assert CAL.is_working_day(date(2006, 12, 31))


def test_provisional_2027_gives_days_in_lieu_for_holidays_on_a_weekend() -> None:
    # No notice for 2027 yet. National Day (1-3 Oct) falls on Fri-Sun: Sat 2 and Sun 3 Oct
    # each earn a working day off in lieu (art. 6), Mon 4 and Tue 5 Oct; likewise Spring
    # Festival (eve Fri 5 Feb, Sat 6 - Mon 8 Feb) gives Tue 9 and Wed 10 Feb, and Labour Day
    # (Sat 1, Sun 2 May) Mon 3 and Tue 4 May. No weekend becomes a working day.
    for day in (1, 2, 3, 4, 5):
        assert not CAL.is_working_day(date(2027, 10, day)), day
    assert CAL.is_working_day(date(2027, 10, 6))  # only the notice can add more
    for month, days in ((2, (5, 8, 9, 10)), (5, (3, 4))):
        assert not any(CAL.is_working_day(date(2027, month, d)) for d in days)
    assert CAL.is_working_day(date(2027, 2, 11)) and CAL.is_working_day(date(2027, 5, 5))
    assert CAL.working_weekend_days(2027) == []
    off = dict(CAL.non_working_days(2027))
    assert off[date(2027, 10, 4)] == "国庆节（补假）"
    # a complaint received Thu 30 Sep 2027: 3 working days are Wed 6, Thu 7, Fri 8 Oct
    assert CAL.add_working_days(sh(2027, 9, 30, 10), 3) == sh(2027, 10, 9)
    assert CAL.add_working_days(sh(2027, 2, 4, 10), 3) == sh(2027, 2, 16)


def test_provisional_years_are_flagged_and_official_ones_are_not() -> None:
    assert CAL.is_provisional(2027) and CAL.is_provisional(2028)
    assert not CAL.is_provisional(2026) and not CAL.is_provisional(2001)
    assert not PLAIN.is_provisional(2027)  # no notices to wait for
    assert CAL.provisional_years(sh(2026, 12, 1), sh(2028, 1, 5)) == [2027, 2028]
    warnings = CAL.warnings_for(sh(2026, 12, 1), sh(2028, 1, 5))
    assert len(warnings) == 2
    assert warnings[0].startswith("calendar cn: 2027 is provisional: no official notice")
    assert "2028 is provisional" in warnings[1]
    assert CAL.warnings_for(sh(2026, 9, 30), sh(2026, 10, 11)) == []
    # 24:00 on 31 Dec 2026 is still 2026
    assert CAL.provisional_years(sh(2026, 12, 1), sh(2027, 1, 1)) == []


NOTICE_2027 = """\
calendar: cn
based_on: CN
title: "China, with a 2027 notice (an example, not the real one)"
holidays: [2027-10-01, 2027-10-02, 2027-10-03, 2027-10-04, 2027-10-05, 2027-10-06,
           2027-10-07]
working_days: [2027-09-26, 2027-10-09]
known_years: [2027]
"""


def test_a_notice_in_yaml_replaces_the_provisional_days() -> None:
    cal = load(NOTICE_2027)
    assert not cal.is_provisional(2027) and cal.warnings_for(sh(2027, 1, 1), sh(2027, 12, 31)) == []
    assert not any(cal.is_working_day(date(2027, 10, d)) for d in range(1, 8))
    assert cal.working_weekend_days(2027) == [date(2027, 9, 26), date(2027, 10, 9)]
    # the file declares the year in full: days in lieu it does not list are working days
    assert cal.is_working_day(date(2027, 2, 9)) and not CAL.is_working_day(date(2027, 2, 9))
    assert cal.add_working_days(sh(2027, 9, 30, 10), 3) == sh(2027, 10, 12)  # Fri 8, Sat 9, Mon 11
    assert cal.is_provisional(2028)


# --------------------------------------------------------------------------- properties

calendars = st.sampled_from([CAL, CAL_BH])
starts = st.datetimes(
    min_value=datetime(2001, 1, 1),
    max_value=datetime(2030, 12, 31),
    timezones=st.sampled_from([SH, UTC, NY]),
    allow_imaginary=False,
)
counts = st.integers(min_value=1, max_value=400)


def _close_day(cal: WorkingCalendar, moment: datetime) -> date:
    """The working day a close-of-business instant closes, or fail."""
    local = moment.astimezone(cal.tz)
    if cal.business_hours is None:
        assert local.time() == time(0)
        return local.date() - timedelta(days=1)
    assert local.time() == cal.business_hours.end
    return local.date()


def _naive_working_days(cal: WorkingCalendar, start: datetime, n: int) -> date:
    local = start.astimezone(cal.tz)
    day = local.date() - timedelta(days=1 if local.time() == time(0) else 0)
    while n:
        day += timedelta(days=1)
        n -= cal.is_working_day(day)
    return day


@given(calendars, starts, counts)
def test_result_is_close_of_business_of_a_working_day(
    cal: WorkingCalendar, start: datetime, n: int
) -> None:
    result = cal.add_working_days(start, n)
    assert result.tzinfo == cal.tz
    assert cal.is_working_day(_close_day(cal, result))
    assert result > start


@given(calendars, starts, counts)
def test_matches_counting_day_by_day(cal: WorkingCalendar, start: datetime, n: int) -> None:
    assert _close_day(cal, cal.add_working_days(start, n)) == _naive_working_days(cal, start, n)


@given(calendars, starts, counts, counts)
def test_adding_in_two_steps_equals_adding_at_once(
    cal: WorkingCalendar, start: datetime, n: int, m: int
) -> None:
    first = cal.add_working_days(start, n)
    assert cal.add_working_days(first, m) == cal.add_working_days(start, n + m)


@given(calendars, starts, starts, counts)
def test_monotonic_in_start(cal: WorkingCalendar, a: datetime, b: datetime, n: int) -> None:
    early, late = sorted((a, b))
    assert cal.add_working_days(early, n) <= cal.add_working_days(late, n)
    assert cal.add_days(early, n) <= cal.add_days(late, n)


@given(calendars, starts, counts, counts)
def test_monotonic_in_n(cal: WorkingCalendar, start: datetime, n: int, m: int) -> None:
    low, high = sorted((n, m))
    if low < high:
        assert cal.add_working_days(start, low) < cal.add_working_days(start, high)
    assert cal.add_days(start, low) <= cal.add_days(start, high)


@given(calendars, starts, counts)
def test_days_period_ends_on_a_working_day_not_before_n_days(
    cal: WorkingCalendar, start: datetime, n: int
) -> None:
    last = _close_day(cal, cal.add_days(start, n))
    plain_last = cal.event_day(start) + timedelta(days=n)
    assert cal.is_working_day(last)
    assert last >= plain_last
    # it moves only over days off
    day = plain_last
    while day < last:
        assert not cal.is_working_day(day)
        day += timedelta(days=1)


@settings(max_examples=50)
@given(starts, st.decimals(min_value=0, max_value=10_000, places=3))
def test_hours_are_exact_elapsed_time(start: datetime, hours: Decimal) -> None:
    result = CAL.add_hours(start, hours)
    elapsed = result.astimezone(UTC) - start.astimezone(UTC)
    assert elapsed == timedelta(microseconds=int(hours * 3_600_000_000))


def test_deadlines_take_microseconds() -> None:
    start = sh(2026, 9, 30, 10)
    CAL.add_working_days(start, 60)  # warm the per-year cache
    began = clock.perf_counter()
    for i in range(20_000):
        CAL.add_working_days(start, 1 + i % 60)
        CAL.add_days(start, 1 + i % 60)
    per_call = (clock.perf_counter() - began) / 40_000
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} µs per deadline"


# --------------------------------------------------------------------------- calendar files

CAL_2027 = """\
calendar: cn
based_on: CN
timezone: Asia/Shanghai
title: "China, with the 2027 notice"
holidays: [2027-01-04, "2027-02-09"]
working_days: [2027-02-20, 2026-10-07]
known_years: [2027]
"""


def test_file_adds_holidays_and_working_days() -> None:
    cal = load(CAL_2027)
    assert cal.name == "cn" and cal.tz == SH
    assert not cal.is_working_day(date(2027, 1, 4))  # Monday made a holiday
    assert not cal.is_working_day(date(2027, 2, 9))
    assert cal.is_working_day(date(2027, 2, 20))  # Saturday made a working day
    assert cal.is_working_day(date(2026, 10, 7))  # overrides the package's day off
    assert cal.working_weekend_days(2027) == [date(2027, 2, 20)]
    off = dict(cal.non_working_days(2027))
    assert date(2027, 1, 4) in off and date(2027, 2, 9) in off
    assert date(2026, 10, 7) not in dict(cal.non_working_days(2026))
    assert cal.year_known(2027) and not cal.year_known(2028)
    assert cal.warnings_for(sh(2027, 1, 1), sh(2027, 12, 31)) == []
    # Fri 1 Jan 2027 event: Mon 4 Jan is off, so Tue 5 Jan is day 1
    assert cal.add_working_days(sh(2027, 1, 1, 9), 1) == sh(2027, 1, 6)
    # Fri 19 Feb 2027 event: Sat 20 Feb is working
    assert cal.add_working_days(sh(2027, 2, 19, 9), 1) == sh(2027, 2, 21)
    # the default calendar knows none of this
    assert CAL.add_working_days(sh(2027, 2, 19, 9), 1) == sh(2027, 2, 23)


def test_file_with_business_hours_and_plain_base() -> None:
    cal = load(
        'calendar: hk-office\ntimezone: Asia/Hong_Kong\nbusiness_hours: {start: "08:30", '
        'end: "18:00"}\nholidays: [2026-10-01]\n'
    )
    hk = ZoneInfo("Asia/Hong_Kong")
    assert cal.add_working_days(datetime(2026, 9, 30, 9, tzinfo=hk), 1) == datetime(
        2026, 10, 2, 18, tzinfo=hk
    )
    assert cal.non_working_days(2026) == [(date(2026, 10, 1), "holiday (calendar hk-office)")]


def test_minimal_file_defaults_to_shanghai() -> None:
    spec = load_calendar(load_text("calendar: x\n", "c.yaml"))
    assert spec.timezone == "Asia/Shanghai" and spec.based_on is None
    assert spec.business_hours is None and spec.holidays == ()


BAD = """\
calendar: cn
based_on: XX
timezone: Mars/Olympus_Mons
business_hours: {start: "18:00", end: "09:00"}
holidays: [2027-01-01, 20270102, "2027-02-30", 2027-01-01]
working_days: [2027-03-01, 2027-01-01]
known_years: [true]
colour: red
"""


def test_bad_file_reports_every_problem_with_positions() -> None:
    with pytest.raises(DefinitionError) as info:
        load_calendar(load_text(BAD, "bad.yaml"))
    text = str(info.value)
    expected = [
        r"bad.yaml:2:1: unknown country 'XX'",
        r"bad.yaml:3:1: unknown time zone 'Mars/Olympus_Mons'",
        r"bad.yaml:4:1: business hours end 09:00 is not after start 18:00",
        r"bad.yaml:5:24: must be a date written YYYY-MM-DD, got 20270102",
        r"bad.yaml:5:34: '2027-02-30' is not a day of the calendar",
        r"bad.yaml:5:48: 2027-01-01 is listed twice in holidays",
        r"bad.yaml:6:28: 2027-01-01 is listed both in holidays and in working_days",
        r"bad.yaml:7:15: input should be a valid integer",
        r"bad.yaml:8:1: unknown key 'colour'",
    ]
    for line in expected:
        assert line in text, text
    assert len(info.value.problems) == len(expected), text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "calendar: cn\nholidays: [2027-01-01]\nworking_days: [2027-01-01]\n",
            r"cal.yaml:3:16: 2027-01-01 is listed both in holidays and in working_days",
        ),
        (
            'calendar: cn\nbusiness_hours: {start: "09:00", end: "09:00"}\n',
            r"cal.yaml:2:1: business hours end 09:00 is not after start 09:00",
        ),
        (
            "calendar: cn\nbusiness_hours: {start: 540, end: '25:00'}\n",
            r"cal.yaml:2:18: must be a time of day written \"HH:MM\" .* got 540\n"
            r"cal.yaml:2:30: must be a time of day .* got '25:00'",
        ),
        ("calendar: cn\ntimezone: ../../etc/passwd\n", r"cal.yaml:2:1: unknown time zone"),
        ("calendar: cn\nbased_on: China\n", r"cal.yaml:2:1: unknown country 'China'"),
        ("calendar: CN Calendar\n", r"cal.yaml:1:1: string should match pattern"),
        ("based_on: CN\n", r"cal.yaml:1:1: missing required key 'calendar'"),
        ("calendar: cn\nholidays: [2027-01-01 10:00:00]\n", r"must be a date written"),
        ("calendar: cn\nknown_years: [0]\n", r"cal.yaml:2:15: input should be greater"),
    ],
)
def test_bad_files(text: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        load_calendar(load_text(text, "cal.yaml"))


def test_spec_built_in_code_also_refuses_a_date_listed_twice() -> None:
    with pytest.raises(ValueError, match="listed both"):
        CalendarSpec(calendar="x", holidays=(date(2027, 1, 1),), working_days=(date(2027, 1, 1),))


def test_default_calendar_is_shared() -> None:
    assert default_calendar() is default_calendar()
    assert CAL.name == "cn" and CAL.tz.key == "Asia/Shanghai" and CAL.business_hours is None
