"""Per-channel send rate, respected by holding back rather than by failing.

DingTalk and WeCom robots accept 20 messages a minute and then refuse (DingTalk for ten
minutes). The limiter never sleeps and never reads the clock: the caller passes ``now``
and gets back either a granted slot or the moment before which it must not try, which
the outbox can store as the row's next attempt time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from notifiers.channels.base import Delivery


@dataclass(frozen=True)
class RateLimit:
    messages: int
    per: timedelta

    def __post_init__(self) -> None:
        if self.messages < 1 or self.per <= timedelta(0):
            raise ValueError("a rate limit needs at least one message per positive period")


class RateLimiter:
    """A sliding window: at most ``messages`` grants in any period of length ``per``."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._granted: deque[datetime] = deque()
        self._held_until: datetime | None = None

    def _prune(self, now: datetime) -> None:
        start = now - self.limit.per
        while self._granted and self._granted[0] <= start:
            self._granted.popleft()

    def not_before(self, now: datetime) -> datetime:
        """The earliest moment a send may go; ``now`` itself if it may go now."""
        self._prune(now)
        when = now
        if len(self._granted) >= self.limit.messages:
            when = max(when, self._granted[-self.limit.messages] + self.limit.per)
        if self._held_until is not None:
            when = max(when, self._held_until)
        return when

    def acquire(self, now: datetime) -> datetime | None:
        """Take a slot at ``now`` and return None, or return when to come back (no slot taken)."""
        when = self.not_before(now)
        if when > now:
            return when
        self._granted.append(now)
        return None

    def hold(self, until: datetime) -> None:
        """The server asked us to back off (Retry-After, a throttling code) until ``until``."""
        if self._held_until is None or until > self._held_until:
            self._held_until = until

    def observe(self, delivery: Delivery, now: datetime) -> None:
        """Apply a delivery's ``retry_after`` to every later message on this channel."""
        if delivery.retry_after is not None:
            self.hold(now + timedelta(seconds=delivery.retry_after))
