"""Keyset paging: a page of rows and an opaque cursor for the rows after it.

Offsets would make page 1000 cost a thousand pages and skip or repeat rows when rows
are added meanwhile; a cursor is the sort key of the last row shown, so the next page
is one index range scan that starts right after it. Every listing sorts by a total
order (its key ends in a unique id), so no row can fall between two pages.

The cursor is base64url of a small JSON array ``[kind, *key]``. It is opaque to users
(they copy it from the ``next:`` line), but it is not secret or signed: a forged one
can only choose where a listing the caller may already see starts.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from engine.errors import InvalidData
from engine.values import check_name

T = TypeVar("T")

# What each listing's key holds, after the kind: the decoder checks it, so a cursor
# from another listing (or a mangled one) is refused instead of silently misread.
KINDS: dict[str, tuple[str, ...]] = {
    "tasks": ("time?", "str"),  # due_at (undated last), task id
    "instances": ("time", "str"),  # created_at, instance id
    "audit": ("int",),  # seq
    "done": ("int",),  # audit seq, newest first (tasks --done-by)
    "users": ("str",),  # user id
}
MAX_CURSOR = 400
MAX_INT64 = 2**63 - 1
MIN_YEAR, MAX_YEAR = 1900, 9000  # the documented range of times


@dataclass(frozen=True)
class Page(Generic[T]):
    """Rows of one page; ``next`` continues after the last of them (None: nothing more)."""

    items: list[T]
    next: str | None = None


def encode(kind: str, *key: Any) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    raw = json.dumps([kind, *values], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(kind: str, cursor: str) -> tuple[Any, ...]:
    """The sort key in ``cursor``; InvalidData if it is not a cursor of this listing."""
    refused = InvalidData(
        "--after",
        f"not a cursor of the {kind} listing; copy it from the 'next: --after ...' line "
        f"that '{kind}' printed",
    )
    if not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR:
        raise refused
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw.decode())
    except (binascii.Error, ValueError):
        raise refused from None
    shape = KINDS[kind]
    if not isinstance(doc, list) or len(doc) != len(shape) + 1 or doc[0] != kind:
        raise refused
    key: list[Any] = []
    for value, want in zip(doc[1:], shape, strict=True):
        if want == "time?" and value is None:
            key.append(None)
        elif want in ("time", "time?") and isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise refused from None
            if moment.tzinfo is None or not MIN_YEAR <= moment.year <= MAX_YEAR:
                raise refused
            key.append(moment)
        elif _plain(want, value):
            key.append(value)
        else:
            raise refused
    return tuple(key)


def _plain(want: str, value: Any) -> bool:
    """Only values every backend can compare: a forged cursor must not reach SQL as a
    64-bit overflow or a NUL that PostgreSQL rejects (a database error, not a refusal)."""
    if want == "str":
        try:
            return value != "" and check_name("--after", value) == value
        except InvalidData:
            return False
    return want == "int" and type(value) is int and 0 <= value <= MAX_INT64
