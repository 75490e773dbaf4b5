"""The rate limiter holds back; it never sleeps and never reads the clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from notifiers.channels.base import Delivery
from notifiers.channels.ratelimit import RateLimit, RateLimiter

T0 = datetime(2026, 11, 27, 9, 0, 0)
S = timedelta(seconds=1)


def robot_limiter() -> RateLimiter:
    return RateLimiter(RateLimit(20, timedelta(minutes=1)))


def test_twenty_a_minute_then_hold_back_until_the_first_slot_frees() -> None:
    limiter = robot_limiter()
    for i in range(20):
        assert limiter.acquire(T0 + i * S) is None
    assert limiter.acquire(T0 + 30 * S) == T0 + 60 * S  # the 21st waits for the 1st to age out
    assert limiter.acquire(T0 + 59 * S) == T0 + 60 * S  # asking again takes no slot
    assert limiter.acquire(T0 + 60 * S) is None
    assert limiter.acquire(T0 + 60 * S) == T0 + 61 * S  # next frees when the 2nd ages out


def test_the_window_slides() -> None:
    limiter = RateLimiter(RateLimit(2, timedelta(seconds=10)))
    assert limiter.acquire(T0) is None
    assert limiter.acquire(T0 + 9 * S) is None
    assert limiter.not_before(T0 + 9 * S) == T0 + 10 * S
    assert limiter.acquire(T0 + 10 * S) is None
    assert limiter.not_before(T0 + 10 * S) == T0 + 19 * S


def test_not_before_is_now_when_free_and_never_in_the_past() -> None:
    limiter = robot_limiter()
    assert limiter.not_before(T0) == T0
    limiter.acquire(T0)
    assert limiter.not_before(T0 + 5 * S) == T0 + 5 * S


def test_a_server_throttle_holds_every_later_message() -> None:
    limiter = robot_limiter()
    limiter.observe(Delivery("transient", "errcode 130101", 600.0), T0)
    assert limiter.acquire(T0 + 1 * S) == T0 + 600 * S
    limiter.observe(Delivery("transient", "timeout"), T0 + 2 * S)  # no retry_after: no change
    limiter.hold(T0 + 10 * S)  # a shorter hold never shortens a longer one
    assert limiter.not_before(T0 + 3 * S) == T0 + 600 * S
    assert limiter.acquire(T0 + 600 * S) is None


@pytest.mark.parametrize(("messages", "per"), [(0, timedelta(minutes=1)), (5, timedelta(0))])
def test_nonsense_limits_are_refused(messages: int, per: timedelta) -> None:
    with pytest.raises(ValueError, match="at least one message"):
        RateLimit(messages, per)
