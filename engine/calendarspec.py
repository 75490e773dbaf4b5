"""The YAML model of a working calendar (calendars/*.yaml): what a process owner may write,
checked all at once with file:line:col before any deadline is counted.

Kept apart from the arithmetic in ``engine.calendar`` so that reading and validating a
calendar file never imports the ``holidays`` package (its registry is read instead).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from engine.errors import DefinitionError, Problem
from engine.validation import Frozen, pydantic_problems
from engine.yamlsafe import Document

__all__ = [
    "DEFAULT_CALENDAR",
    "DEFAULT_TIMEZONE",
    "MAX_YEAR",
    "MIN_YEAR",
    "UNITS",
    "BusinessHours",
    "CalendarSpec",
    "Unit",
    "load_calendar",
]

DEFAULT_CALENDAR = "cn"
DEFAULT_TIMEZONE = "Asia/Shanghai"

Unit = Literal["working_days", "days", "hours"]
UNITS: tuple[Unit, ...] = ("working_days", "days", "hours")

MIN_YEAR = 1
MAX_YEAR = 9999

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CLOCK_RE = re.compile(r"(\d{2}):(\d{2})")
_NAME_RE = r"^[a-z][a-z0-9_-]{0,63}$"


def _as_date(value: Any) -> date:
    """Accept only real ``YYYY-MM-DD`` dates.

    pydantic's lax mode would also take integers (as Unix timestamps) and timestamps with a
    time of day; in a holiday list either is a typo, not a date.
    """
    if isinstance(value, datetime):
        raise PydanticCustomError("calendar_date", "must be a date without a time of day")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE_RE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise PydanticCustomError(
                "calendar_date", "{value} is not a day of the calendar", {"value": repr(value)}
            ) from None
    raise PydanticCustomError(
        "calendar_date",
        "must be a date written YYYY-MM-DD, got {value}",
        {"value": repr(value)},
    )


def _as_clock(value: Any) -> time:
    """Accept only quoted ``HH:MM``: YAML 1.1 readers turn an unquoted 17:30 into 1050."""
    if isinstance(value, time):
        return value
    if isinstance(value, str) and (m := _CLOCK_RE.fullmatch(value.strip())):
        hour, minute = int(m.group(1)), int(m.group(2))
        if hour < 24 and minute < 60:
            return time(hour, minute)
    raise PydanticCustomError(
        "calendar_clock",
        'must be a time of day written "HH:MM" (00:00 to 23:59, in quotes), got {value}',
        {"value": repr(value)},
    )


CalendarDate = Annotated[date, BeforeValidator(_as_date)]
ClockTime = Annotated[time, BeforeValidator(_as_clock)]
Year = Annotated[int, Field(strict=True, ge=MIN_YEAR, le=MAX_YEAR)]


class BusinessHours(Frozen):
    """Opening hours of every working day; a period then ends at ``end``, not at 24:00."""

    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _end_after_start(self) -> BusinessHours:
        if self.end <= self.start:
            raise PydanticCustomError(
                "calendar_hours",
                "business hours end {end} is not after start {start}; "
                'write them as start: "09:00", end: "17:30"',
                {"end": self.end.strftime("%H:%M"), "start": self.start.strftime("%H:%M")},
            )
        return self


class CalendarSpec(Frozen):
    """One calendar file: a base country (optional) plus local corrections."""

    calendar: str = Field(pattern=_NAME_RE)
    based_on: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    business_hours: BusinessHours | None = None
    holidays: tuple[CalendarDate, ...] = ()
    working_days: tuple[CalendarDate, ...] = ()
    known_years: tuple[Year, ...] = ()
    title: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        if not _zone_exists(value):
            raise PydanticCustomError(
                "calendar_timezone",
                "unknown time zone {value}; use an IANA name such as 'Asia/Shanghai'",
                {"value": repr(value)},
            )
        return value

    @field_validator("based_on")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is not None and value not in _country_codes():
            raise PydanticCustomError(
                "calendar_country",
                "unknown country {value} for the holidays package; "
                "use an ISO 3166 code such as 'CN', or omit based_on for a plain "
                "Monday-to-Friday calendar",
                {"value": repr(value)},
            )
        return value

    @model_validator(mode="after")
    def _no_date_listed_twice(self) -> CalendarSpec:
        for index, day in enumerate(self.working_days):
            if day in self.holidays:
                raise PydanticCustomError(
                    "calendar_date_twice",
                    "{day} is listed both in holidays and in working_days; keep it in one",
                    {"day": day.isoformat(), "index": index},
                )
        return self


@lru_cache(maxsize=1)
def _country_codes() -> frozenset[str]:
    """The codes the ``holidays`` package knows, read from its registry: listing the
    countries (``list_supported_countries``) would import all of their ~250 modules."""
    from holidays.registry import EntityLoader

    return frozenset(EntityLoader.get_country_codes())


def _zone_exists(key: str) -> bool:
    try:
        ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def load_calendar(doc: Document) -> CalendarSpec:
    """Validate a calendar document, reporting every problem in it at once.

    Dates listed twice are checked on the raw data as well, so that they are reported next
    to any other problem (pydantic skips model-level checks once a field is wrong) and at
    the position of the offending entry rather than at the top of the file.
    """
    problems: list[Problem] = _raw_date_problems(doc)
    spec: CalendarSpec | None = None
    try:
        spec = CalendarSpec.model_validate(doc.data)
    except ValidationError as exc:
        for err, problem in zip(
            exc.errors(include_url=False), pydantic_problems(doc, exc), strict=True
        ):
            if err["type"] != "calendar_date_twice":  # already reported by position
                problems.append(problem)
    if problems:
        raise DefinitionError(problems)
    assert spec is not None
    return spec


def _raw_date_problems(doc: Document) -> list[Problem]:
    data = doc.data
    if not isinstance(data, dict):
        return []
    seen: dict[str, dict[date, int]] = {}
    problems: list[Problem] = []
    for key in ("holidays", "working_days"):
        items = data.get(key)
        seen[key] = {}
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            try:
                day = _as_date(item)
            except PydanticCustomError:
                continue  # reported by the model
            if day in seen[key]:
                problems.append(
                    doc.problem(
                        (key, index),
                        f"{day.isoformat()} is listed twice in {key}; remove one",
                    )
                )
            else:
                seen[key][day] = index
    for day, index in seen["working_days"].items():
        if day in seen["holidays"]:
            problems.append(
                doc.problem(
                    ("working_days", index),
                    f"{day.isoformat()} is listed both in holidays and in working_days; "
                    "keep it in one",
                )
            )
    return problems
