"""Working calendars and the Civil Code way of counting periods.

Deadlines in Shenpi are legal or contractual periods, so they are counted the way Chinese
law counts them (Civil Code art. 201-203), not as "now + N * 24h":

* the day of the event is not counted; counting starts the next day;
* a period in working days ends at close of business of the N-th working day, where
  working days skip weekends and statutory holidays but include the weekend days the
  State Council declares working days (调休);
* a period in (calendar) days whose last day is a non-working day ends on the next
  working day instead;
* a period ends at 24:00 of its last day, or at close of business where the calendar has
  business hours.

The module is pure: it never reads the clock or the environment. Every instant comes in as
a timezone-aware ``datetime`` and goes out as one in the calendar's time zone.

Which days are holidays comes from the ``holidays`` package (for China: the statutory
holidays plus the yearly State Council notice, which the package hard-codes as
"substituted" days, and whose weekend working days it exposes as ``weekend_workdays``; it
has no ``WORKDAY`` category for China), plus a YAML calendar file for what the package
lacks, e.g. next year's notice before the package has been updated.

A year with no known notice is *provisional*: its days off are what the law alone fixes,
the statutory holidays (全国年节及纪念日放假办法 as revised in 2024, in force 2025: New Year
1 day, Spring Festival 4 from the eve, Qingming 1, Labour Day 2, Dragon Boat 1, Mid-Autumn
1, National Day 3) plus, for each one on a Saturday or Sunday, a working day off in lieu
(art. 6, 补假), which the package places on the next working day. The weekend working days
(调休) exist only by the notice, so a provisional year has none.

The wall-clock rule for chaining: an instant at exactly 00:00 local time is taken as 24:00
of the previous day. A deadline without business hours ends at 24:00 of its last day, which
*is* 00:00 of the next day; without this rule an extension counted from that deadline would
silently skip a day.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from engine.calendarspec import (
    DEFAULT_CALENDAR,
    DEFAULT_TIMEZONE,
    MAX_YEAR,
    MIN_YEAR,
    UNITS,
    BusinessHours,
    CalendarSpec,
    Unit,
)

if TYPE_CHECKING:
    from holidays import HolidayBase

__all__ = [
    "WorkingCalendar",
    "default_calendar",
]

# --------------------------------------------------------------------------- calendar


@dataclass(frozen=True)
class _Year:
    """Everything about one year that deadline arithmetic needs, computed once."""

    working: frozenset[int]  # ordinals of working days
    working_sorted: tuple[int, ...]  # the same, ascending, for bisect
    off: tuple[tuple[date, str], ...]  # named non-working days (not plain weekends)
    working_weekends: tuple[date, ...]


class WorkingCalendar:
    """A calendar that answers "is this a working day" and counts periods.

    Holiday data is computed per year on first use and kept, so that computing a deadline
    is a couple of set lookups and a bisect, not a call into the ``holidays`` package.
    Instances are safe to share between threads.
    """

    def __init__(self, spec: CalendarSpec) -> None:
        self.spec = spec
        self.name: str = spec.calendar
        self.tz: ZoneInfo = ZoneInfo(spec.timezone)
        self.business_hours: BusinessHours | None = spec.business_hours
        self._extra_off = frozenset(spec.holidays)
        self._extra_working = frozenset(spec.working_days)
        self._known_extra = frozenset(spec.known_years)
        self._years: dict[int, _Year] = {}
        self._lock = threading.Lock()
        self._country_lock = threading.Lock()
        # the base country's views and facts, set up on first use (see _country): importing
        # the ``holidays`` package costs more than most commands, and a loaded calendar
        # (service/defcache.py) has the years it needs already built
        self._official: HolidayBase | None = None
        self._statutory: HolidayBase | None = None
        self._facts_known = spec.based_on is None
        self._package_years: frozenset[int] | None = None
        self._package_range = (0, -1)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable: the built years and the package's facts, without the locks and the
        package's objects (made again on first use, if a year not built is asked for)."""
        state = self.__dict__.copy()
        for key in ("_lock", "_country_lock", "_official", "_statutory"):
            state.pop(key)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._country_lock = threading.Lock()
        self._official = self._statutory = None

    def _country(self) -> tuple[HolidayBase, HolidayBase] | None:
        """The package's official and statutory views of the base country, or None."""
        code = self.spec.based_on
        if code is None:
            return None
        if self._official is None:
            with self._country_lock:
                if self._official is None:
                    self._setup_country(code)
        assert self._official is not None and self._statutory is not None
        return self._official, self._statutory

    def _setup_country(self, code: str) -> None:
        """Two views of the country: with and without the package's days in lieu.

        For a year the package has the official notice for, its substituted and observed
        days *are* the schedule. For a provisional year (no notice known) its observed days
        are the statutory days in lieu, which the law grants whatever the notice says, so
        they count too; :meth:`warnings_for` says the year is provisional. The view without
        them is the base of a year a calendar file declares in full (``known_years``): the
        file then lists every day off of the notice itself. The language is pinned because
        the package otherwise picks holiday names from the process environment ($LANG).
        """
        from holidays import country_holidays

        official = country_holidays(code)
        language = getattr(official, "default_language", None)
        self._statutory = country_holidays(code, language=language, observed=False)
        self._package_range = (
            int(getattr(official, "start_year", MIN_YEAR)),
            int(getattr(official, "end_year", MAX_YEAR)),
        )
        if getattr(official, "has_substituted_holidays", False):
            # Countries with yearly adjustments (China): a year is known iff the package
            # carries that year's notice, i.e. substituted days listed for it.
            specials: dict[int, Any] = getattr(official, "special_public_holidays", {}) or {}
            self._package_years = frozenset(
                year for year, entries in specials.items() if _has_substitution(entries)
            )
        else:
            self._package_years = None  # rule-based country: every supported year is known
        self._facts_known = True
        self._official = country_holidays(code, language=language)  # last: marks it set up

    def __repr__(self) -> str:
        return f"WorkingCalendar({self.name!r}, tz={self.tz.key!r})"

    # ----------------------------------------------------------------- what is known

    def year_known(self, year: int) -> bool:
        """Whether ``year``'s official day-off adjustments are in the package or the file.

        A plain calendar (no ``based_on``) has no adjustments to know, so every year is
        known.
        """
        if year in self._known_extra or self.spec.based_on is None:
            return True
        return self._package_knows(year)

    def _package_knows(self, year: int) -> bool:
        if not self._facts_known:
            self._country()
        if self._package_years is not None:
            return year in self._package_years
        low, high = self._package_range
        return low <= year <= high

    def is_provisional(self, year: int) -> bool:
        """Whether ``year``'s days off are derived from the law alone, pending the notice."""
        return not self.year_known(year)

    def provisional_years(self, start: date, end: date) -> list[int]:
        """The provisional years in [start, end], ascending.

        Datetimes are taken in the calendar's time zone, ``end`` with the 24:00 rule, so a
        deadline at 24:00 on 31 December does not flag the next year.
        """
        first = self._local_day(start, midnight_is_previous=False)
        last = self._local_day(end, midnight_is_previous=True)
        if last < first:
            first, last = last, first
        return [y for y in range(first.year, last.year + 1) if self.is_provisional(y)]

    def warnings_for(self, start: date, end: date) -> list[str]:
        """One message per provisional year in [start, end] (see :meth:`provisional_years`)."""
        return [
            f"calendar {self.name}: {year} is provisional: no official notice of its days "
            f"off is known, so deadlines in {year} count the statutory holidays and a day "
            f"off in lieu for each one on a weekend, and no working weekends (调休); add the "
            f"notice to a calendar file (holidays, working_days, known_years)"
            for year in self.provisional_years(start, end)
        ]

    def non_working_days(self, year: int) -> list[tuple[date, str]]:
        """Statutory holidays, official days off and the file's extra holidays, named.

        Plain weekends are left out: they are implied, and listing 104 of them would bury
        the days that matter.
        """
        return list(self._year(year).off)

    def working_weekend_days(self, year: int) -> list[date]:
        """Weekend days that are working days (调休), from the package and the file."""
        return list(self._year(year).working_weekends)

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` (a local date in this calendar) is a working day."""
        if isinstance(day, datetime):
            day = self._local_day(day, midnight_is_previous=False)
        return day.toordinal() in self._year(day.year).working

    # ----------------------------------------------------------------- counting

    def event_day(self, moment: datetime) -> date:
        """The local day an event at ``moment`` happened on (00:00 counts as 24:00 before)."""
        return self._local_day(moment, midnight_is_previous=True)

    def close_of_business(self, day: date) -> datetime:
        """The instant ``day`` ends: end of business hours, or 24:00 (00:00 the day after)."""
        if self.business_hours is not None:
            return datetime.combine(day, self.business_hours.end, tzinfo=self.tz)
        if day.toordinal() >= date.max.toordinal():
            raise ValueError("a deadline on 9999-12-31 has no 24:00 that datetime can express")
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.tz)

    def next_working_day(self, day: date, *, include: bool = True) -> date:
        """The first working day on or after ``day`` (after it, if ``include`` is false)."""
        ordinal = day.toordinal() - (1 if include else 0)
        return date.fromordinal(self._nth_working_ordinal_after(ordinal, 1))

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """Close of business of the ``n``-th working day after the day of ``start``.

        ``n == 0`` is a period of no length: it returns ``start`` itself (in this time
        zone), the same as ``add_days`` and ``add_hours`` do with 0, so a zero-length
        deadline is simply due at once.
        """
        n = _count(n)
        if n == 0:
            return self._local(start)
        day = self.event_day(start)
        target = self._nth_working_ordinal_after(day.toordinal(), n)
        return self.close_of_business(date.fromordinal(target))

    def add_days(self, start: datetime, n: int) -> datetime:
        """Close of the ``n``-th calendar day after ``start``'s day, moved off a day off.

        Art. 203: if the last day is not a working day, the period ends on the first
        working day after it. A declared working weekend (调休) is a working day, so a
        period ending on one does not move. ``n == 0`` returns ``start``.
        """
        n = _count(n)
        if n == 0:
            return self._local(start)
        last = self.event_day(start).toordinal() + n
        if last > date.max.toordinal():
            raise ValueError(f"{n} days after {start.isoformat()} is beyond year 9999")
        if last not in self._year(date.fromordinal(last).year).working:
            last = self._nth_working_ordinal_after(last, 1)
        return self.close_of_business(date.fromordinal(last))

    def add_hours(self, start: datetime, hours: Decimal | int) -> datetime:
        """``start`` plus ``hours`` of elapsed time, ignoring the calendar.

        Hours are for service levels like "answer within 4 hours", which run through nights
        and holidays. They are elapsed time (computed in UTC), not wall-clock time, so a
        daylight-saving change in the calendar's zone cannot stretch or shrink them. The
        result is exact to the microsecond.
        """
        if isinstance(hours, bool) or not isinstance(hours, int | Decimal):
            raise TypeError(f"hours must be an int or Decimal, not {type(hours).__name__}")
        amount = Decimal(hours)
        if not amount.is_finite() or amount < 0:
            raise ValueError(f"hours must be a finite number >= 0, got {hours}")
        micro = int((amount * 3_600_000_000).to_integral_value())
        moment = _aware(start).astimezone(UTC) + timedelta(microseconds=micro)
        return moment.astimezone(self.tz)

    def last_day(self, start: datetime, n: int, unit: Unit) -> date:
        """The last day of a period of ``n`` working or calendar days from ``start``.

        The day ``add_working_days``/``add_days`` end at, before the time of day is chosen:
        the ``n``-th working day after the event's day, or the ``n``-th calendar day moved
        off a day off (art. 203). ``n == 0`` is the event's day itself, moved on to the next
        working day if it is not one ("by 17:30 today", said on a Sunday, means Monday).
        """
        n = _count(n)
        day = self.event_day(start)
        if unit == "working_days":
            if n == 0:
                return self.next_working_day(day)
            return date.fromordinal(self._nth_working_ordinal_after(day.toordinal(), n))
        if unit == "days":
            last = day.toordinal() + n
            if last > date.max.toordinal():
                raise ValueError(f"{n} days after {start.isoformat()} is beyond year 9999")
            return self.next_working_day(date.fromordinal(last))
        raise ValueError(f"a period ending at a time of day is counted in days, not {unit!r}")

    def working_days_before(self, day: date, n: int) -> date:
        """The ``n``-th working day before ``day`` (``day`` itself not counted).

        ``n == 0`` is ``day`` if it is a working day, else the last working day before it:
        "0 working days before a Sunday deadline" is the Friday (or a 调休 Saturday).
        """
        n = _count(n)
        ordinal = day.toordinal()
        if n == 0:
            if self.is_working_day(day):
                return day
            n = 1
        return date.fromordinal(self._nth_working_ordinal_before(ordinal, n))

    def at_clock(self, day: date, clock: time) -> datetime:
        """``day`` at wall-clock ``clock`` in this calendar's zone.

        Where daylight saving makes the wall clock skip ``clock`` (spring forward), it is
        the instant the clock would have shown it had it not jumped (02:30 -> 03:30 new
        time); where the wall clock shows it twice (fall back), the first of the two.
        """
        naive = datetime.combine(day, clock.replace(tzinfo=None))
        return naive.replace(tzinfo=self.tz, fold=0).astimezone(UTC).astimezone(self.tz)

    def add(
        self, start: datetime, amount: int | Decimal, unit: Unit, at: time | None = None
    ) -> datetime:
        """Dispatch on the unit named in a process definition.

        ``at`` (a time of day, for days and working days only) ends the period at that
        local time of its last day (:meth:`last_day`) instead of close of business;
        elapsed hours ignore it.
        """
        if unit == "hours":
            return self.add_hours(start, amount)
        if at is not None:
            return self.at_clock(self.last_day(start, _whole(amount, unit), unit), at)
        if unit == "working_days":
            return self.add_working_days(start, _whole(amount, unit))
        if unit == "days":
            return self.add_days(start, _whole(amount, unit))
        raise ValueError(f"unknown unit {unit!r}; use one of {', '.join(UNITS)}")

    # ----------------------------------------------------------------- internals

    def _local(self, moment: datetime) -> datetime:
        return _aware(moment).astimezone(self.tz)

    def _local_day(self, value: date, *, midnight_is_previous: bool) -> date:
        if not isinstance(value, datetime):
            return value
        local = self._local(value)
        if midnight_is_previous and local.time() == time(0):
            return local.date() - timedelta(days=1)
        return local.date()

    def _nth_working_ordinal_after(self, ordinal: int, n: int) -> int:
        """Ordinal of the n-th working day strictly after ``ordinal`` (n >= 1)."""
        year = date.fromordinal(ordinal).year
        while True:
            days = self._year(year).working_sorted
            i = bisect_right(days, ordinal)
            remaining = len(days) - i
            if n <= remaining:
                return days[i + n - 1]
            n -= remaining
            year += 1
            if year > MAX_YEAR:
                raise ValueError("deadline is beyond year 9999")

    def _nth_working_ordinal_before(self, ordinal: int, n: int) -> int:
        """Ordinal of the n-th working day strictly before ``ordinal`` (n >= 1)."""
        year = date.fromordinal(ordinal).year
        while True:
            days = self._year(year).working_sorted
            i = bisect_left(days, ordinal)  # days[:i] are before ordinal
            if n <= i:
                return days[i - n]
            n -= i
            year -= 1
            if year < MIN_YEAR:
                raise ValueError("a reminder before year 1 cannot be counted")
            ordinal = date(year, 12, 31).toordinal() + 1

    def _year(self, year: int) -> _Year:
        cached = self._years.get(year)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._years.get(year)
            if cached is None:
                cached = self._build_year(year)
                self._years[year] = cached
            return cached

    def _build_year(self, year: int) -> _Year:
        # The file's known_years declare the schedule themselves (holidays, working_days),
        # so they are built on the statutory days alone; every other year on the package's
        # view with days in lieu (the notice's days for known years, art. 6 for the rest).
        views = self._country()
        package_knows = views is not None and self._package_knows(year)
        declared = year in self._known_extra and not package_knows
        country = None if views is None else views[1] if declared else views[0]
        first = date(year, 1, 1).toordinal()
        last = date(year, 12, 31).toordinal()
        names: dict[date, str] = {}
        in_package_range = self._package_range[0] <= year <= self._package_range[1]
        if country is not None and in_package_range:
            for y in (year - 1, year, year + 1):  # observed days may cross a year boundary
                if self._package_range[0] <= y <= self._package_range[1]:
                    country.get(date(y, 1, 1))  # populates that year (expand=True)
            names.update((d, n) for d, n in country.items() if d.year == year)
        for d in self._extra_off:
            if d.year == year:
                names.setdefault(d, f"holiday (calendar {self.name})")
        for d in self._extra_working:
            names.pop(d, None)

        working: list[int] = []
        working_weekends: list[date] = []
        for ordinal in range(first, last + 1):
            d = date.fromordinal(ordinal)
            if country is not None and in_package_range:
                weekend = country.is_weekend(d)
                is_working = country.is_working_day(d)
            else:
                weekend = d.weekday() >= 5
                is_working = not weekend
            if d in self._extra_working:
                is_working = True
            elif d in self._extra_off:
                is_working = False
            if is_working:
                working.append(ordinal)
                if weekend:
                    working_weekends.append(d)
        return _Year(
            working=frozenset(working),
            working_sorted=tuple(working),
            off=tuple(sorted(names.items())),
            working_weekends=tuple(working_weekends),
        )


def _has_substitution(entries: Any) -> bool:
    """Whether a year's special holidays include a day moved from another day (调休)."""
    if isinstance(entries, tuple) and entries and not isinstance(entries[0], tuple):
        entries = (entries,)
    return any(isinstance(e, tuple) and len(e) >= 4 for e in entries or ())


def _aware(moment: datetime) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"expected a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{moment.isoformat()} has no time zone; deadlines need timezone-aware datetimes"
        )
    return moment


def _count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"a count of days must be an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError(f"a count of days must be >= 0, got {n}")
    return n


def _whole(amount: int | Decimal, unit: str) -> int:
    if isinstance(amount, Decimal) and amount.is_finite() and amount == amount.to_integral():
        return int(amount)
    if isinstance(amount, int) and not isinstance(amount, bool):
        return amount
    raise ValueError(f"{unit} must be a whole number, got {amount}")


@lru_cache(maxsize=1)
def default_calendar() -> WorkingCalendar:
    """China in Asia/Shanghai, no business hours: the calendar when none is configured.

    Shared, so its per-year cache is built once per process.
    """
    spec = CalendarSpec.model_construct(  # constants: no check (it would import holidays)
        calendar=DEFAULT_CALENDAR, based_on="CN", timezone=DEFAULT_TIMEZONE
    )
    return WorkingCalendar(spec)
