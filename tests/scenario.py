"""One instance driven through the pure engine and kept by a real Store.

Scenario tests (``tests/processes``, ``tests/engine/test_deadlines.py``) used to play
storage's part with two hand-written stand-ins that disagreed: one replaced a timer set
twice, the other kept the first; one dropped every timer when an instance closed, the
other did not. Here storage plays its own part: every outcome of ``fire`` is written with
``Store.apply`` to an in-memory SQLite database, the next step starts from the snapshot
read back, and due timers come from ``Store.due_timers`` in the order ``tick`` fires them.
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from engine.org import Actor
from engine.process import CompiledProcess
from engine.records import Outcome, Snapshot, TimerRecord
from engine.runtime import Act, Start, TimerFired, fire
from storage.db import open_engine
from storage.store import Store

SYSTEM = Actor("system", frozenset())
FAR = datetime(9999, 1, 1, tzinfo=UTC)  # due_timers(FAR): every pending timer
MAX_TIMERS = 10_000  # more pending timers than any one scenario sets


@functools.cache
def _migrated() -> sqlite3.Connection:
    """A database at the head revision, made once per test session (Alembic ~50 ms)."""
    with Store.open("sqlite://") as store:
        raw = store.engine.raw_connection()
        try:
            copy = sqlite3.connect(":memory:", check_same_thread=False)
            raw.driver_connection.backup(copy)
        finally:
            raw.close()
    return copy


def memory_store() -> Store:
    """A fresh, empty Store on an in-memory SQLite database: a copy of ``_migrated``."""
    engine = open_engine("sqlite://")
    raw = engine.raw_connection()
    try:
        _migrated().backup(raw.driver_connection)
    finally:
        raw.close()
    return Store(engine)


@dataclass
class Stored:
    """One instance: each step fired by the engine, applied by the store, read back."""

    proc: CompiledProcess
    store: Store = field(default_factory=memory_store)
    instance_id: str = "i1"
    snap: Snapshot | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def apply(self, out: Outcome, now: datetime, timer: TimerRecord | None = None) -> Outcome:
        """Write ``out`` as ``tick`` or the service would (Conflict if storage refuses it).

        One instance only: what a step asks of linked instances (children to start or
        cancel, a parent to tell) stays in ``outcomes`` for the test to check, and is not
        written (tests/cli/test_links.py runs linked instances through the service)."""
        alone = replace(out, spawns=(), cancel_children=(), tell_parent=None)
        self.store.apply(alone, now, fired_timer=timer.id if timer else None)
        self.snap = self.store.load_snapshot(out.snapshot.id)
        self.outcomes.append(out)
        return out

    def reader(self) -> Any:
        """A fresh register reader on this store for one step (None: the process reads
        no register), as ``Workflow.reader`` gives the service's steps."""
        if not self.proc.registers:
            return None
        from storage.registers import StoreRegisterReader

        return StoreRegisterReader(self.store.registers)

    def start(self, actor: Actor, data: dict[str, Any], now: datetime) -> Outcome:
        start = Start(self.instance_id, 1)
        out = fire(self.proc, None, start, actor, data, now, registers=self.reader())
        return self.apply(out, now)

    def act(
        self, actor: Actor, action: str, data: dict[str, Any], now: datetime, comment: str | None
    ) -> Outcome:
        assert self.snap is not None and self.snap.tasks, "no open task"
        event = Act(self.snap.tasks[0].id, action, comment)
        out = fire(self.proc, self.snap, event, actor, data, now, registers=self.reader())
        return self.apply(out, now)

    def fire_timer(self, timer: TimerRecord, now: datetime) -> Outcome:
        out = fire(
            self.proc, self.snap, TimerFired(timer), SYSTEM, {}, now, registers=self.reader()
        )
        return self.apply(out, now, timer)

    def pending(self) -> list[TimerRecord]:
        """The pending timers in storage, in firing order (due time, then id)."""
        return self.store.due_timers(FAR, limit=MAX_TIMERS)

    def next_due(self, to: datetime) -> TimerRecord | None:
        """The timer ``tick(to)`` would fire first, if any is due by ``to``."""
        due = self.store.due_timers(to, limit=1)
        return due[0] if due else None
