"""Scenario tests of the shipped process definitions (``processes/*.yaml``).

Helpers shared by the test modules live here (this package has no conftest of its own):
``definition`` compiles a shipped file against the shipped org directory, ``Run`` drives one
instance through the pure engine (``fire``) with the timers a store would keep, and
``cli`` gives a deployed ``Shell`` for scenarios through ``python run.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from engine.org import Actor, Org, load_org
from engine.process import CompiledProcess, compile_process
from engine.records import Outcome, Snapshot, TaskRecord, TimerRecord
from engine.runtime import Act, Start, TimerFired, decode_variables, fire, live_values
from engine.yamlsafe import load_file, load_text

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
SH = ZoneInfo("Asia/Shanghai")
SYSTEM = Actor("system", frozenset())


def at(text: str) -> datetime:
    """An instant in Shanghai time: ``at("2026-09-30 10:00")``."""
    return datetime.fromisoformat(text).replace(tzinfo=SH)


@functools.cache
def org() -> Org:
    return load_org(load_file(PROCESSES / "org.yaml"))


@functools.cache
def definition(name: str) -> CompiledProcess:
    """A shipped process, compiled once per test session."""
    return compile_process(load_file(PROCESSES / f"{name}.yaml"), org())


def compile_text(text: str, file: str = "broken.yaml") -> CompiledProcess:
    """Compile a (deliberately edited) copy of a shipped file."""
    return compile_process(load_text(text, file), org())


def source(name: str) -> str:
    return (PROCESSES / f"{name}.yaml").read_text(encoding="utf-8")


@dataclass
class Run:
    """One instance driven through ``fire``; keeps the pending timers as storage would."""

    proc: CompiledProcess
    snap: Snapshot
    now: datetime
    timers: dict[str, TimerRecord] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)

    @classmethod
    def start(cls, name: str, user: str | Actor, now: datetime, **data: Any) -> Run:
        proc = definition(name)
        actor = user if isinstance(user, Actor) else org().actor(user)
        out = fire(proc, None, Start("i1", 1), actor, data, now)
        run = cls(proc, out.snapshot, now)
        run._apply(out)
        return run

    def _apply(self, out: Outcome) -> Outcome:
        for state in out.timers_cancel_states:
            self.timers = {k: t for k, t in self.timers.items() if t.state != state}
        for timer in out.timers_set:
            self.timers[timer.id] = timer
        if out.snapshot.status != "active":
            self.timers.clear()
        self.snap = out.snapshot
        self.outcomes.append(out)
        return out

    # ------------------------------------------------------------------ reading

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
        found = sorted(self.timers.values(), key=lambda t: (t.due_at, t.id))
        return [t for t in found if kind is None or t.kind == kind]

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
        out = fire(
            self.proc,
            self.snap,
            Act(self.task.id, action, comment),
            user if isinstance(user, Actor) else org().actor(user),
            data,
            self.now,
        )
        self._apply(out)
        return self

    def advance(self, to: datetime) -> list[Outcome]:
        """Fire, in order, every pending timer due by ``to``, each at its due time."""
        fired = []
        while True:
            due = [t for t in self.pending() if t.due_at <= to]
            if not due:
                break
            timer = due[0]
            del self.timers[timer.id]
            self.now = max(self.now, timer.due_at)
            out = fire(self.proc, self.snap, TimerFired(timer), SYSTEM, {}, self.now)
            fired.append(self._apply(out))
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
