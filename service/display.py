"""How values look in every output: one display zone, plain decimals.

The CLI's tables and ``-o json``, and the log lines of ``serve``, must agree: a time is ISO
8601 with the offset of the display zone (env ``SHENPI_TZ``, read here and nowhere else,
default Asia/Shanghai), and a decimal is written in plain fixed notation with the scale it
has (``1000.00``, never ``1E+3`` or ``-0``). Kept free of heavy imports: the CLI's
``--help`` path imports it.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_DISPLAY_TZ = "Asia/Shanghai"


class DisplayZoneError(ValueError):
    """SHENPI_TZ names no time zone; raised where the CLI can turn it into one line."""


@lru_cache(maxsize=1)
def display_tz() -> ZoneInfo:
    """The zone every time is shown in: ``SHENPI_TZ``, else Asia/Shanghai."""
    key = os.environ.get("SHENPI_TZ") or DEFAULT_DISPLAY_TZ
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise DisplayZoneError(
            f"SHENPI_TZ={key!r} is not a time zone; use an IANA name such as 'Asia/Shanghai'"
        ) from None


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with offset, in the display zone."""
    return value.astimezone(display_tz()).isoformat() if value is not None else None


def iso_text(value: Any) -> Any:
    """A stored ISO 8601 time (text with an offset) moved to the display zone; else as is."""
    if not isinstance(value, str) or "T" not in value:
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return iso(moment) if moment.tzinfo is not None else value


def plain_decimal(value: Decimal) -> str:
    """Fixed notation with the value's own scale; a negative zero is shown as zero.

    ``str(Decimal)`` switches to exponent form for results such as ``10 / 0.01`` (``1E+3``)
    and keeps the sign of ``0 * -1`` (``-0``); neither is how anyone writes an amount.
    """
    if not value.is_finite():
        return str(value)
    if value.is_zero():
        value = abs(value)
    return format(value, "f")


def plain_number_text(text: Any) -> Any:
    """A stored decimal (text) in plain notation; anything that is not a number as is."""
    if not isinstance(text, str):
        return text
    try:
        return plain_decimal(Decimal(text))
    except InvalidOperation:
        return text


def jsonable(value: Any) -> Any:
    """``json.dumps(default=...)``: decimals plain, times in the display zone."""
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def __getattr__(name: str) -> Any:
    """``DisplayZoneFormatter`` lives in service/logformat.py, so that importing this
    module (``--help`` does) does not import ``logging``."""
    if name == "DisplayZoneFormatter":
        from service.logformat import DisplayZoneFormatter

        return DisplayZoneFormatter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
