"""The one place channels read the wall clock; tests pass their own ``clock``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Aware UTC now. Signatures need UTC: standardwebhooks signs ``replace(tzinfo=utc)``."""
    return datetime.now(UTC)


def as_utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("channel clocks must return aware datetimes")
    return now.astimezone(UTC)
