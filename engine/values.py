"""Typed process variables: parsing user input, and the JSON form they are stored in.

Numbers are never binary floats: money, rates and percentages must be exact at the
policy boundaries (an override of exactly 30% goes to the sales VP, not the GM).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
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
MAX_NAME = 200  # ids, action names, user ids, variable names
MAX_JSON_BYTES = 1_000_000
MAX_JSON_DEPTH = 64

# Digits with at most one decimal point, an optional sign and an optional exponent. No
# thousands separators: "1,5" is 1.5 in much of the world and "1,00,0" is a typo, so
# guessing (dropping the commas) stored 15 and 1000.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Control characters (C0 but tab and newline, DEL, C1) and lone surrogates (what Python
# makes of undecodable bytes in argv, or "\ud800" in JSON): PostgreSQL refuses NUL and
# nothing can encode a surrogate, so both backends refuse them here, before storage.
_BAD_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_BAD_IN_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def shown(text: str) -> str:
    """``text`` quoted and escaped so a message can print it (no raw control characters)."""
    return repr(text)


def _bad_char(field: str, text: str, match: re.Match[str], allowed: str) -> InvalidData:
    char = match.group()
    where = f"at position {match.start() + 1}"
    if "\ud800" <= char <= "\udfff":
        return InvalidData(
            field,
            f"{shown(text[:40])} is not valid Unicode (lone surrogate U+{ord(char):04X} {where}); "
            "give the text as UTF-8",
        )
    return InvalidData(
        field, f"control character U+{ord(char):04X} {where} is not allowed ({allowed})"
    )


def check_text(field: str, text: str, *, multiline: bool = True) -> str:
    """Refuse text no backend can store the same way: lone surrogates, control characters.

    Newline and tab are allowed in ``multiline`` text (``text`` variables, comments).
    """
    if not isinstance(text, str):
        raise InvalidData(field, f"expected text, got {type(text).__name__}")
    bad = _BAD_IN_TEXT.search(text)
    if bad:
        raise _bad_char(field, text, bad, "only newline and tab are")
    if not multiline and "\n" in text:
        raise InvalidData(field, "expected one line of text (use a 'text' variable for more)")
    if len(text) > MAX_TEXT:
        raise InvalidData(field, f"longer than {MAX_TEXT} characters")
    return text


def check_name(field: str, name: str) -> str:
    """An id, action name, user id or variable name: one line, no control characters at all.

    Checked before anything is looked up or recorded, so the audit log only ever holds
    names that every backend stores, and messages can print them.
    """
    if not isinstance(name, str):
        raise InvalidData(field, f"expected text, got {type(name).__name__}")
    bad = _BAD_IN_NAME.search(name)
    if bad:
        raise _bad_char(field, name, bad, "not even newline or tab in a name")
    if len(name) > MAX_NAME:
        raise InvalidData(field, f"longer than {MAX_NAME} characters")
    return name


def check_input_names(data: Mapping[str, Any]) -> None:
    """The keys of user input (``--set``, ``--data``, an API body) are names too."""
    for key in data:
        check_name("variable name", key)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"duplicate key {shown(key)}: give each key once")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number; give numbers as digits")


def json_depth(value: Any) -> int:
    """Nesting depth, without recursion (the value may be deep); the CLI's ``--data``
    and the HTTP API's bodies are bounded by it alike."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def load_json_object(text: str, source: str) -> dict[str, Any]:
    """Parse user-supplied JSON the way the YAML loader reads definitions: exact numbers,
    duplicate keys refused, bounded size and depth; the result must be an object."""
    if len(text) > MAX_JSON_BYTES:
        raise InvalidData(source, f"larger than {MAX_JSON_BYTES} characters: refused")
    too_deep = InvalidData(source, f"nested deeper than {MAX_JSON_DEPTH} levels: refused")
    try:
        loaded = json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_no_constant,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:
        raise InvalidData(source, str(exc).splitlines()[0]) from None
    if json_depth(loaded) > MAX_JSON_DEPTH:
        raise too_deep
    if not isinstance(loaded, dict):
        raise InvalidData(source, "expected a JSON object of variable: value")
    return loaded


def _decimal(name: str, raw: Any) -> Decimal:
    if isinstance(raw, bool):
        raise InvalidData(name, f"expected a number, got {raw!r}")
    if isinstance(raw, float):
        raise InvalidData(name, "binary floats are inexact; give the number as text or a decimal")
    if isinstance(raw, Decimal | int):
        value = Decimal(raw)
    elif isinstance(raw, str):
        if not _NUMBER.fullmatch(raw.strip()):
            raise InvalidData(
                name,
                f"expected a number (digits with an optional decimal point, e.g. 1234.50; "
                f"no thousands separators), got {raw!r}",
            )
        try:
            value = Decimal(raw.strip())
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
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
        check_text(name, raw, multiline=vtype is VarType.text)
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
