"""Standard five-field cron, on top of APScheduler 3's CronTrigger.

APScheduler 3 numbers weekdays from Monday = 0, so its ``from_crontab("0 8 * * 1")`` fires
on Tuesdays (agronholm/apscheduler#286, fixed only in 4.x). Process owners write cron the
way crontab(5) defines it (0 or 7 = Sunday, 1 = Monday), so numeric weekday fields are
rewritten into day names before APScheduler sees them.
"""

from __future__ import annotations

from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger

_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekday_numbers(field: str) -> set[int]:
    days: set[int] = set()
    for part in field.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"bad step in {part!r}")
        if body == "*":
            lo, hi = 0, 6
        elif "-" in body:
            lo_text, hi_text = body.split("-", 1)
            lo, hi = int(lo_text), int(hi_text)
        else:
            lo = hi = int(body)
            if step_text:
                hi = 7
        if not (0 <= lo <= 7 and 0 <= hi <= 7 and lo <= hi):
            raise ValueError(f"weekday {part!r} out of range 0-7")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return days


def standard_weekdays(field: str) -> str:
    """Cron's numeric weekdays (0/7 = Sunday) as names; names and '*' pass through."""
    if field == "*" or any(c.isalpha() for c in field):
        return field
    return ",".join(_NAMES[d] for d in sorted(_weekday_numbers(field)))


def cron_trigger(expr: str, tz: tzinfo | str) -> CronTrigger:
    """A trigger for a five-field crontab expression; ValueError when it is invalid."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"cron {expr!r} needs five fields: minute hour day month weekday")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=standard_weekdays(weekday),
        timezone=tz,
    )
