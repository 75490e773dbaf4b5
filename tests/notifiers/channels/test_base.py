"""Shared pieces: Retry-After parsing, one-line details, secret scrubbing."""

from __future__ import annotations

from datetime import UTC, datetime

from notifiers.channels.base import Delivery, retry_after_seconds, scrub, transient

NOW = datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC)


def test_retry_after_as_seconds_or_an_http_date() -> None:
    assert retry_after_seconds("120", NOW) == 120.0
    assert retry_after_seconds("Fri, 27 Nov 2026 09:00:30 GMT", NOW) == 30.0
    assert retry_after_seconds("Fri, 27 Nov 2026 08:00:00 GMT", NOW) == 0.0  # already past
    assert retry_after_seconds("soon", NOW) is None
    assert retry_after_seconds(None, NOW) is None


def test_details_are_one_bounded_line() -> None:
    detail = transient("HTTP 502:\n<html>\n" + "x" * 1000).detail
    assert "\n" not in detail and len(detail) <= 300 and detail.startswith("HTTP 502: <html>")


def test_scrub_blanks_every_secret() -> None:
    got = scrub(Delivery("permanent", "bad key abc123 for tok9"), ["abc123", "tok9", ""])
    assert got == Delivery("permanent", "bad key *** for ***")
