"""What an expression sees, and variables between their stored JSON and Python values.

Shared by the core (``engine.steps``) and the service (``live`` values shown, never
stored), so that a guard and a view read the same names with the same meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, tzinfo
from typing import Any

from engine.calendar import WorkingCalendar
from engine.process import CALENDAR_FUNCTIONS, CompiledProcess
from engine.values import decode, encode


def decode_variables(process: CompiledProcess, stored: Mapping[str, Any]) -> dict[str, Any]:
    """Stored JSON -> typed Python values, every declared variable present (None if unset),
    in declaration order."""
    variables = process.spec.variables
    values: dict[str, Any] = dict.fromkeys(variables)
    for name, raw in stored.items():
        spec = variables.get(name)
        if spec is not None and raw is not None:
            values[name] = decode(spec.type, raw)
    return values


def encode_variables(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: encode(v) for k, v in values.items() if v is not None}


def live_values(
    process: CompiledProcess, values: Mapping[str, Any], now: datetime, requester: str
) -> dict[str, Any]:
    """``live`` variables as of ``now`` (shown, never stored by themselves)."""
    ctx = context(values, now, "system", requester, calendar=process.calendar)
    out: dict[str, Any] = {}
    for name, spec in process.spec.variables.items():
        if spec.live is not None:
            out[name] = process.expr(f"live.{name}").evaluate(ctx)
            ctx[name] = out[name]
    return out


def context(
    values: Mapping[str, Any],
    now: datetime,
    actor: str,
    requester: str,
    tz: tzinfo | None = None,
    calendar: WorkingCalendar | None = None,
) -> dict[str, Any]:
    """What an expression sees: the variables plus a few well-known names.

    ``now`` and ``today`` are in the process calendar's zone: at 07:00 in Shanghai it is
    already "today" there, though still yesterday in UTC. With the process ``calendar``,
    the functions that need it (``CALENDAR_FUNCTIONS``) are there too.
    """
    if tz is None and calendar is not None:
        tz = calendar.tz
    local = now.astimezone(tz) if tz is not None else now
    ctx = dict(values)
    ctx.update(now=local, today=local.date(), actor=actor, requester=requester)
    if calendar is not None:
        ctx.update(calendar_functions(calendar))
    return ctx


def calendar_functions(calendar: WorkingCalendar) -> dict[str, Any]:
    """Expression functions bound to the process calendar (see ``CALENDAR_FUNCTIONS``).

    A date computed in an expression (a payment term's last day, say) must move off a
    holiday exactly as the deadline counted by the same calendar does (Civil Code art. 203),
    or a fee and a deadline computed from "the same" term disagree.
    """

    def next_working_day(day: Any) -> date:
        """``day`` itself if it is a working day, else the first working day after it."""
        if day is None:
            raise TypeError("next_working_day needs a date, got none")
        if isinstance(day, datetime):
            day = day.astimezone(calendar.tz).date()
        elif not isinstance(day, date):
            day = date.fromisoformat(str(day))
        return calendar.next_working_day(day)

    functions = {"next_working_day": next_working_day}
    assert functions.keys() == CALENDAR_FUNCTIONS
    return functions
