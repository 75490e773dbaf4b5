"""Scenario tests of the shipped process definitions (``processes/*.yaml``).

Helpers shared by the test modules live here (this package has no conftest of its own):
``definition`` compiles a shipped file against the shipped org directory, ``Run`` drives one
instance through the pure engine (``fire``), each step kept by a real in-memory Store, and
``cli`` gives a deployed ``Shell`` for scenarios through ``python run.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from engine.catalog import yaml_files
from engine.links import ChildFinished
from engine.org import Actor, Org, load_org
from engine.process import CompiledProcess, compile_process
from engine.records import Outcome, Snapshot, SpawnRequest, TaskRecord, TimerRecord
from engine.registers import MemoryRegisters, RegisterSpec, load_register
from engine.runtime import Act, Start, TimerFired, decode_variables, fire, live_values
from engine.yamlsafe import load_file, load_text
from tests.scenario import SYSTEM, Stored

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
SH = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    """An instant in Shanghai time: ``at("2026-09-30 10:00")``."""
    return datetime.fromisoformat(text).replace(tzinfo=SH)


@functools.cache
def org() -> Org:
    return load_org(load_file(PROCESSES / "org.yaml"))


@functools.cache
def registers() -> dict[str, RegisterSpec]:
    """The shipped registers (processes/registers/*.yaml), by name."""
    folder = PROCESSES / "registers"
    specs = [load_register(load_file(p)) for p in yaml_files([folder])] if folder.is_dir() else []
    return {spec.name: spec for spec in specs}


@functools.cache
def definition(name: str) -> CompiledProcess:
    """A shipped process, compiled once per test session."""
    return compile_process(load_file(PROCESSES / f"{name}.yaml"), org(), registers=registers())


@dataclass
class RegStored(Stored):
    """A ``Stored`` whose steps read and write registers held in memory (``books``): each
    step gets a fresh reader (one pinned version per register, as storage gives) and its
    register writes are applied after the store took the step."""

    books: MemoryRegisters | None = None

    def apply(self, out: Outcome, now: datetime, timer: TimerRecord | None = None) -> Outcome:
        out = super().apply(out, now, timer)
        if self.books is not None:
            for w in out.register_writes:
                self.books.write(w.register, w.key, w.values, w.at)
        return out

    def _reader(self) -> MemoryRegisters | None:
        return self.books.reader() if self.books is not None else None

    def start(self, actor: Actor, data: dict[str, Any], now: datetime) -> Outcome:
        out = fire(
            self.proc, None, Start(self.instance_id, 1), actor, data, now, registers=self._reader()
        )
        return self.apply(out, now)

    def act(
        self, actor: Actor, action: str, data: dict[str, Any], now: datetime, comment: str | None
    ) -> Outcome:
        assert self.snap is not None and self.snap.tasks, "no open task"
        event = Act(self.snap.tasks[0].id, action, comment)
        out = fire(self.proc, self.snap, event, actor, data, now, registers=self._reader())
        return self.apply(out, now)

    def fire_timer(self, timer: TimerRecord, now: datetime) -> Outcome:
        out = fire(
            self.proc, self.snap, TimerFired(timer), SYSTEM, {}, now, registers=self._reader()
        )
        return self.apply(out, now, timer)


def books(**rows: dict[str, dict[str, Any]]) -> MemoryRegisters:
    """Registers in memory with these rows (register -> key -> JSON fields), written at
    2026-01-01: ``books(customer_credit={"天山乳业": {"grade": "A", ...}})``."""
    mem = MemoryRegisters()
    for register, keyed in rows.items():
        for key, values in keyed.items():
            mem.write(register, key, values, at("2026-01-01 00:00"))
    return mem


def compile_text(text: str, file: str = "broken.yaml") -> CompiledProcess:
    """Compile a (deliberately edited) copy of a shipped file."""
    return compile_process(load_text(text, file), org(), registers=registers())


def source(name: str) -> str:
    return (PROCESSES / f"{name}.yaml").read_text(encoding="utf-8")


@dataclass
class Run:
    """One instance driven through ``fire`` and kept by a real store (``tests.scenario``);
    ``now`` is the instant the next step happens unless it names one."""

    proc: CompiledProcess
    now: datetime
    stored: Stored

    @classmethod
    def start(
        cls,
        name: str,
        user: str | Actor,
        now: datetime,
        registers: MemoryRegisters | None = None,
        **data: Any,
    ) -> Run:
        """Start ``name``; its steps read and write ``registers`` when given."""
        proc = definition(name)
        if registers is None and proc.registers:
            registers = MemoryRegisters()  # a process that reads registers: empty books
        stored = RegStored(proc, books=registers) if registers is not None else Stored(proc)
        stored.start(user if isinstance(user, Actor) else org().actor(user), data, now)
        return cls(proc, now, stored)

    # ------------------------------------------------------------------ reading

    @property
    def snap(self) -> Snapshot:
        assert self.stored.snap is not None
        return self.stored.snap

    @property
    def outcomes(self) -> list[Outcome]:
        return self.stored.outcomes

    @property
    def state(self) -> str:
        return self.snap.state

    @property
    def outcome(self) -> str | None:
        return self.snap.outcome

    @property
    def status(self) -> str:
        return self.snap.status

    @property
    def vars(self) -> dict[str, Any]:
        """Typed variables (Decimal, date...)."""
        return decode_variables(self.proc, self.snap.variables)

    def live(self, now: datetime) -> dict[str, Any]:
        return live_values(self.proc, self.vars, now, self.snap.requester)

    @property
    def task(self) -> TaskRecord:
        (task,) = self.snap.tasks
        return task

    @property
    def role(self) -> str:
        return self.task.pending_roles[0]

    @property
    def last(self) -> Outcome:
        return self.outcomes[-1]

    def pending(self, kind: str | None = None) -> list[TimerRecord]:
        return [t for t in self.stored.pending() if kind is None or t.kind == kind]

    # ------------------------------------------------------------------ acting

    def act(
        self,
        user: str | Actor,
        action: str,
        comment: str | None = None,
        now: datetime | None = None,
        **data: Any,
    ) -> Run:
        self.now = now or self.now
        actor = user if isinstance(user, Actor) else org().actor(user)
        self.stored.act(actor, action, data, self.now, comment)
        return self

    @property
    def spawned(self) -> list[SpawnRequest]:
        """Every child this instance asked the service to start, in order."""
        return [r for out in self.outcomes for r in out.spawns]

    def child_finished(
        self,
        child_id: str,
        outcome: str | None,
        status: str = "completed",
        variables: dict[str, Any] | None = None,
    ) -> Run:
        """What the service fires on a parent when its child ``child_id`` ends."""
        stored = self.stored
        event = ChildFinished(child_id, status, outcome, variables or {})
        reader = stored._reader() if isinstance(stored, RegStored) else None
        out = fire(self.proc, stored.snap, event, SYSTEM, {}, self.now, registers=reader)
        stored.apply(out, self.now)
        return self

    def advance(self, to: datetime) -> list[Outcome]:
        """Fire, in storage's order, every timer due by ``to``, each at its due time
        (or at ``now`` if that is later: a step is never dated before the last one)."""
        fired = []
        while (timer := self.stored.next_due(to)) is not None:
            self.now = max(self.now, timer.due_at)
            fired.append(self.stored.fire_timer(timer, self.now))
        self.now = max(self.now, to)
        return fired


def cli(db_url: str, name: str, deployed_at: str | None = None) -> Any:
    """A ``Shell`` on a fresh database with only process ``name`` deployed (other files in
    the folder, being edited by others, cannot break this process's tests)."""
    from tests.cli.helpers import Shell

    shell = Shell(db_url)
    shell.ok(["deploy", str(PROCESSES / f"{name}.yaml")], now=deployed_at)
    return shell


def audit_actions(run: Run) -> list[tuple[str, str, str | None, str | None]]:
    return [
        (a.actor, a.action, a.from_state, a.to_state) for out in run.outcomes for a in out.audit
    ]


def decisions_of(run: Run) -> list[dict[str, Any]]:
    """The decision-table evaluations recorded in the audit entries."""
    return [d for out in run.outcomes for a in out.audit for d in a.data.get("decisions", [])]
