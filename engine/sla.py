"""The instance-wide deadline clock (``deadline:`` at the top of a process), as a value.

The engine starts, pauses, resumes, extends and stops it; the service shows it; storage
keeps it as JSON in the instance's ``meta`` under ``"sla"``. A frozen type with one JSON
form keeps the three from each reading a dict of string keys their own way, and lets a
step change the clock without copying the snapshot it was given. The JSON keys are those
stored since the first release, so existing databases read as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.calendar import WorkingCalendar

JSON = dict[str, Any]
TimeText = Callable[[datetime], Any]
NumberText = Callable[[Decimal], Any]


class SlaPhase(StrEnum):
    """Where the clock stands, in one word for people."""

    running = "running"
    paused = "paused"
    met = "met"  # stopped by its due time
    stopped = "stopped"  # stopped after its due time


def _iso(moment: datetime) -> str:
    return moment.isoformat()


@dataclass(frozen=True)
class Extension:
    """One approved extension of the deadline, by whom and when."""

    amount: Decimal
    unit: str
    at: datetime
    by: str

    def to_json(self, time: TimeText = _iso, number: NumberText = str) -> JSON:
        return {
            "amount": number(self.amount),
            "unit": self.unit,
            "at": time(self.at),
            "by": self.by,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Extension:
        return cls(
            amount=Decimal(data["amount"]),
            unit=data["unit"],
            at=datetime.fromisoformat(data["at"]),
            by=data["by"],
        )


@dataclass(frozen=True)
class SlaClock:
    """Where the instance deadline stands.

    ``amount``/``unit`` and ``counted_from`` are the period as first counted (extensions
    in the same unit count the whole period again from there); ``generation`` numbers the
    timer sets, so a re-planned deadline gets fresh timer ids. While paused, ``paused_at``
    is set and ``remaining_s`` says how much was left; a stopped clock has ``stopped_at``
    and ``met``.
    """

    started_at: datetime
    counted_from: datetime
    amount: Decimal
    unit: str
    due_at: datetime
    generation: int = 0
    extensions: tuple[Extension, ...] = ()
    pauses: tuple[tuple[datetime, datetime], ...] = ()  # (paused at, resumed at)
    paused_at: datetime | None = None
    remaining_s: int | None = None
    stopped_at: datetime | None = None
    met: bool | None = None

    # ------------------------------------------------------------------ state

    @property
    def running(self) -> bool:
        """Counting now: neither stopped nor paused."""
        return self.stopped_at is None and self.paused_at is None

    @property
    def phase(self) -> SlaPhase:
        if self.paused_at is not None:
            return SlaPhase.paused
        if self.met:
            return SlaPhase.met
        return SlaPhase.stopped if self.stopped_at is not None else SlaPhase.running

    # ------------------------------------------------------------------ changes

    def stop(self, now: datetime) -> SlaClock:
        """Stopped by reaching an ``until`` or final state; met if it stood by its due time
        (a clock stopped while paused stood still from the start of the pause)."""
        stopped = self.paused_at or now
        return replace(self, stopped_at=now, met=stopped <= self.due_at, paused_at=None)

    def pause(self, now: datetime) -> SlaClock:
        remaining = max(0, int((self.due_at - now).total_seconds()))
        return replace(self, paused_at=now, remaining_s=remaining)

    def resume(self, now: datetime) -> SlaClock:
        """Counting again; the due time is *not* moved here (see ``resumed_due``)."""
        assert self.paused_at is not None
        pauses = (*self.pauses, (self.paused_at, now))
        return replace(self, pauses=pauses, paused_at=None, remaining_s=None)

    def resumed_due(self, now: datetime) -> datetime:
        """The clock stood still while paused: the deadline moves by the pause's length."""
        assert self.paused_at is not None
        return self.due_at + (now - self.paused_at)

    def replanned(self, due: datetime) -> SlaClock:
        """A new due time, with the next generation of timers."""
        return replace(self, due_at=due, generation=self.generation + 1)

    def extended(self, extension: Extension) -> SlaClock:
        return replace(self, extensions=(*self.extensions, extension))

    def extended_due(
        self, calendar: WorkingCalendar, amount: Decimal, unit: str, at: time | None = None
    ) -> datetime:
        """Where one more extension of ``amount`` ``unit`` puts the deadline.

        In the deadline's own unit the whole period is counted again from its start:
        60 days plus 30 is day 90, even when day 60 fell on a holiday and the first
        deadline had moved to the next working day (Civil Code art. 203 moves only the
        last day of the period actually counted). Pauses push it back by their length.
        In another unit it is counted on from the current deadline. ``at`` (the deadline's
        time of day) ends a period of days or working days at that time, not at 24:00.
        """
        if unit != self.unit or any(e.unit != unit for e in self.extensions):
            return calendar.add(self.due_at, amount, unit, at)  # type: ignore[arg-type]
        total = self.amount + sum(e.amount for e in self.extensions) + amount
        paused = sum((end - begin for begin, end in self.pauses), timedelta())
        return calendar.add(self.counted_from, total, unit, at) + paused  # type: ignore[arg-type]

    # ------------------------------------------------------------------ JSON

    def to_json(self, time: TimeText = _iso, number: NumberText = str) -> JSON:
        """The stored form; ``time`` and ``number`` let a view show the same keys in its
        own zone and notation."""
        out: JSON = {
            "started_at": time(self.started_at),
            "counted_from": time(self.counted_from),
            "amount": number(self.amount),
            "unit": self.unit,
            "due_at": time(self.due_at),
            "generation": self.generation,
            "extensions": [e.to_json(time, number) for e in self.extensions],
        }
        if self.pauses:
            out["pauses"] = [[time(begin), time(end)] for begin, end in self.pauses]
        if self.paused_at is not None:
            out["paused_at"] = time(self.paused_at)
        if self.remaining_s is not None:
            out["remaining_s"] = self.remaining_s
        if self.stopped_at is not None:
            out["stopped_at"] = time(self.stopped_at)
            out["met"] = self.met
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SlaClock:
        def moment(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromisoformat(value) if value else None

        started_at = moment("started_at")
        counted_from = moment("counted_from")
        due_at = moment("due_at")
        assert started_at is not None and counted_from is not None and due_at is not None
        return cls(
            started_at=started_at,
            counted_from=counted_from,
            amount=Decimal(data["amount"]),
            unit=data["unit"],
            due_at=due_at,
            generation=int(data.get("generation", 0)),
            extensions=tuple(Extension.from_json(e) for e in data.get("extensions", [])),
            pauses=tuple(
                (datetime.fromisoformat(begin), datetime.fromisoformat(end))
                for begin, end in data.get("pauses", [])
            ),
            paused_at=moment("paused_at"),
            remaining_s=data.get("remaining_s"),
            stopped_at=moment("stopped_at"),
            met=data.get("met"),
        )
