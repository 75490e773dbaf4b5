"""Typed process variables: parsing user input, and the JSON form they are stored in.

Numbers are never binary floats: money, rates and percentages must be exact at the
policy boundaries (an override of exactly 30% goes to the sales VP, not the GM).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from engine.errors import InvalidData


class VarType(StrEnum):
    string = "string"
    text = "text"
    integer = "integer"
    decimal = "decimal"
    money = "money"  # yuan, at most 2 decimal places (fen)
    percent = "percent"  # a Decimal number of percent: 30 means 30%
    boolean = "boolean"
    date = "date"
    datetime = "datetime"
    enum = "enum"
    user = "user"  # a user id of the org directory


NUMERIC = {VarType.integer, VarType.decimal, VarType.money, VarType.percent}
_TRUE = {"true", "yes", "y", "1", "on", "是"}
_FALSE = {"false", "no", "n", "0", "off", "否"}
MAX_TEXT = 20_000


def _decimal(name: str, raw: Any) -> Decimal:
    if isinstance(raw, bool):
        raise InvalidData(name, f"expected a number, got {raw!r}")
    if isinstance(raw, float):
        raise InvalidData(name, "binary floats are inexact; give the number as text or a decimal")
    if isinstance(raw, Decimal | int):
        value = Decimal(raw)
    elif isinstance(raw, str):
        try:
            value = Decimal(raw.strip().replace(",", "").replace("_", ""))
        except InvalidOperation:
            raise InvalidData(name, f"expected a number, got {raw!r}") from None
    else:
        raise InvalidData(name, f"expected a number, got {type(raw).__name__}")
    if not value.is_finite():
        raise InvalidData(name, f"expected a finite number, got {raw!r}")
    if value and not -30 <= value.adjusted() <= 30:
        raise InvalidData(name, f"{raw!r} is out of range (at most 30 digits either side)")
    return value


def coerce(
    name: str,
    vtype: VarType,
    raw: Any,
    *,
    values: tuple[str, ...] = (),
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
) -> Any:
    """Turn user input (CLI text, JSON, YAML) into the variable's Python value, or refuse."""
    if raw is None:
        return None
    if vtype in (VarType.string, VarType.text, VarType.enum, VarType.user):
        if not isinstance(raw, str):
            if isinstance(raw, bool | dict | list):
                raise InvalidData(name, f"expected text, got {type(raw).__name__}")
            raw = str(raw)
        if vtype is VarType.string and "\n" in raw:
            raise InvalidData(name, "expected one line of text (use a 'text' variable for more)")
        if len(raw) > MAX_TEXT:
            raise InvalidData(name, f"longer than {MAX_TEXT} characters")
        if vtype is VarType.enum and raw not in values:
            raise InvalidData(name, f"{raw!r} is not one of {', '.join(values)}")
        return raw
    if vtype in NUMERIC:
        value = _decimal(name, raw)
        if vtype is VarType.integer:
            if value != value.to_integral_value():
                raise InvalidData(name, f"expected a whole number, got {raw!r}")
            result: Any = int(value)
        elif vtype is VarType.money:
            if value.as_tuple().exponent < -2:  # type: ignore[operator]
                raise InvalidData(name, f"money has at most 2 decimal places (fen), got {raw!r}")
            result = value
        else:
            result = value
        if minimum is not None and value < minimum:
            raise InvalidData(name, f"must be at least {minimum}, got {raw}")
        if maximum is not None and value > maximum:
            raise InvalidData(name, f"must be at most {maximum}, got {raw}")
        return result
    if vtype is VarType.boolean:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise InvalidData(name, f"expected true or false, got {raw!r}")
    if vtype is VarType.date:
        if isinstance(raw, datetime):
            raise InvalidData(name, "expected a date (YYYY-MM-DD), got a date and time")
        if isinstance(raw, date):
            return raw
        try:
            return date.fromisoformat(str(raw).strip())
        except ValueError:
            raise InvalidData(name, f"expected a date as YYYY-MM-DD, got {raw!r}") from None
    if vtype is VarType.datetime:
        if isinstance(raw, datetime):
            value_dt = raw
        else:
            try:
                value_dt = datetime.fromisoformat(str(raw).strip())
            except ValueError:
                raise InvalidData(
                    name, f"expected an ISO 8601 time with offset, got {raw!r}"
                ) from None
        if value_dt.tzinfo is None:
            raise InvalidData(name, f"time {raw!r} needs a UTC offset, e.g. +08:00")
        return value_dt
    raise InvalidData(name, f"unsupported type {vtype}")  # pragma: no cover


def encode(value: Any) -> Any:
    """The JSON-safe stored form: exact decimals as strings, times as ISO 8601."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    raise TypeError(f"cannot store value of type {type(value).__name__}")


def decode(vtype: VarType, stored: Any) -> Any:
    """Back from the stored form; trusted input, so no range checks."""
    if stored is None:
        return None
    if vtype is VarType.integer:
        return int(stored)
    if vtype in NUMERIC:
        return Decimal(stored)
    if vtype is VarType.date:
        return date.fromisoformat(stored)
    if vtype is VarType.datetime:
        return datetime.fromisoformat(stored)
    return stored
