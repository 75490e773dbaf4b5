"""The SLA clock type: stored JSON reads back unchanged, and its changes are values."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from engine.records import Snapshot
from engine.sla import Extension, SlaClock

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 10, 9, 9, 0, tzinfo=SH)

# what databases written before the type existed hold, in the order the old code wrote
# the keys: started, paused and resumed, extended, then stopped while paused again
STORED = [
    {
        "started_at": "2026-10-09T09:00:00+08:00",
        "counted_from": "2026-10-09T09:00:00+08:00",
        "amount": "3",
        "unit": "working_days",
        "due_at": "2026-10-14T00:00:00+08:00",
        "generation": 0,
        "extensions": [],
    },
    {
        "started_at": "2026-10-09T09:00:00+08:00",
        "counted_from": "2026-10-08T12:00:00+08:00",
        "amount": "1.5",
        "unit": "hours",
        "due_at": "2026-10-16T00:00:00+08:00",
        "generation": 2,
        "extensions": [
            {"amount": "2", "unit": "days", "at": "2026-10-10T10:00:00+00:00", "by": "zhao.lei"}
        ],
        "pauses": [["2026-10-09T12:00:00+08:00", "2026-10-10T12:00:00.123456+08:00"]],
        "paused_at": "2026-10-11T12:00:00+08:00",
        "remaining_s": 3600,
    },
    {
        "started_at": "2026-10-09T09:00:00+08:00",
        "counted_from": "2026-10-09T09:00:00+08:00",
        "amount": "60",
        "unit": "days",
        "due_at": "2026-12-08T00:00:00+08:00",
        "generation": 1,
        "extensions": [],
        "remaining_s": 0,
        "stopped_at": "2026-12-09T10:00:00+08:00",
        "met": False,
    },
]


def test_stored_clocks_read_back_to_the_same_json() -> None:
    for stored in STORED:
        clock = SlaClock.from_json(stored)
        assert json.dumps(clock.to_json()) == json.dumps(stored)
        assert SlaClock.from_json(clock.to_json()) == clock


def test_the_snapshot_reads_its_clock_from_meta() -> None:
    snap = Snapshot("i1", "p", 1, "s", "active", {}, "u", T0, T0, meta={"sla": STORED[1]})
    clock = snap.sla
    assert clock is not None and clock.paused_at == datetime(2026, 10, 11, 12, tzinfo=SH)
    assert clock.extensions == (
        Extension(
            Decimal(2), "days", datetime.fromisoformat("2026-10-10T10:00:00+00:00"), "zhao.lei"
        ),
    )
    assert Snapshot("i1", "p", 1, "s", "active", {}, "u", T0, T0).sla is None


def test_pause_resume_stop_are_new_values() -> None:
    clock = SlaClock(T0, T0, Decimal(3), "working_days", T0 + timedelta(days=5))
    paused = clock.pause(T0 + timedelta(days=1))
    assert clock.running and not paused.running and paused.phase == "paused"
    assert paused.remaining_s == 4 * 86400
    later = T0 + timedelta(days=3)
    resumed = paused.resume(later)
    assert resumed.pauses == ((T0 + timedelta(days=1), later),) and resumed.running
    assert paused.resumed_due(later) == T0 + timedelta(days=7)
    moved = resumed.replanned(T0 + timedelta(days=7))
    assert moved.generation == 1 and moved.due_at == T0 + timedelta(days=7)
    # stopped while paused: it stood still from the start of the pause
    late = paused.stop(T0 + timedelta(days=30))
    assert late.met is True and late.paused_at is None and late.phase == "met"
    missed = clock.stop(T0 + timedelta(days=6))
    assert missed.met is False and missed.phase == "stopped"
    assert clock.stopped_at is None and clock.pauses == ()


def test_a_view_writes_times_and_numbers_its_own_way() -> None:
    clock = SlaClock.from_json(STORED[1])
    shown = clock.to_json(time=lambda t: t.astimezone(SH).strftime("%d %H:%M"), number=repr)
    assert shown["extensions"][0] == {
        "amount": "Decimal('2')",
        "unit": "days",
        "at": "10 18:00",
        "by": "zhao.lei",
    }
    assert shown["pauses"] == [["09 12:00", "10 12:00"]] and shown["amount"] == "Decimal('1.5')"
