"""Shenpi side by side with SpiffWorkflow and a transitions+JSON floor, in one run.

The same 3-human-task approval on each system: a requester starts an instance, then a
clerk, a manager and a director approve in turn (three users, three roles). Every step
(the start and each approval) is one committed SQLite transaction with fsync on, read and
written in that transaction (``BEGIN IMMEDIATE``), as a stateless server would do it:

- ``spiff-wal``: SpiffWorkflow 3 (``BpmnParser``, ``BpmnWorkflow``, its
  ``BpmnWorkflowSerializer``) storing each workflow as one JSON row and its spec once in a
  spec table, as spiff-example-cli's SQLite serializer does; WAL, ``synchronous=FULL``.
  Each step loads the workflow, checks the user's role against the ready task's lane,
  runs the task and the engine steps, and writes the serialization back.
- ``spiff-journal``: the same on SQLite's default rollback journal (``synchronous`` left
  at its default, FULL).
- ``floor``: a ``transitions`` Machine (one shared machine, the instance added as a model
  for the step) and one JSON row per instance (state and data), updated once per step;
  WAL, ``synchronous=FULL``. Roughly the least a durable state machine can do in Python.
- ``shenpi``: ``service.workflow.Workflow`` (the path the CLI takes) on SQLite, with the
  3-step process and an org written by this script into a temporary processes folder.

Each system drives ``--n`` instances per round after a short warm-up; the rounds
interleave the systems (a, b, c, d, a, b, c, d, ...) so that a change in the machine's load
hits all of them. The script prints steps/s (steps = start + 3 approvals), p50/p99 per
step, the ratios Shenpi/peer, and the machine, the versions and the date.

The peers are never project dependencies. Install them in the benchmark's own environment:

    python3 -m venv /work/benchvenv
    /work/benchvenv/bin/pip install -r requirements.lock -e .
    /work/benchvenv/bin/pip install 'SpiffWorkflow==3.*'
    /work/benchvenv/bin/python bench/bench_peers.py --n 2000 --rounds 3

``--skip-spiff`` runs without SpiffWorkflow (floor and Shenpi only). ``--profile N``
instead profiles N Shenpi instances under cProfile and prints the top 25 functions by
cumulative time, per step.

Not a test: figures go to docs/benchmarks.md with the machine and the date.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (state, role, user) of the three approvals, in order; the requester starts.
STEPS = (("check", "clerk", "ann"), ("approve", "manager", "bob"), ("sign", "director", "cat"))
REQUESTER = "rita"
USER_ROLES = {"ann": "clerk", "bob": "manager", "cat": "director", "rita": "requester"}
START_DATA = {"amount": 1200, "note": "new laptop"}
T0 = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)
WARMUP = 20

ORG_YAML = """\
org: bench
roles:
  requester: {}
  clerk: {}
  manager: {}
  director: {}
users:
  rita: {name: Rita, roles: [requester]}
  ann: {name: Ann, roles: [clerk]}
  bob: {name: Bob, roles: [manager]}
  cat: {name: Cat, roles: [director]}
"""

PROCESS_YAML = """\
process: approval3
title: Three-step approval (benchmark)
variables:
  amount: {type: integer}
  note: {type: string}
start: {to: check, require: [amount], accept: [note]}
states:
  check:
    task: {role: clerk, actions: {approve: {to: approve, accept: [note]}}}
  approve:
    task: {role: manager, actions: {approve: {to: sign, accept: [note]}}}
  sign:
    task: {role: director, actions: {approve: {to: done, accept: [note]}}}
  done: {final: true}
"""

BPMN = """\
<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="defs"
    targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="approval3" isExecutable="true">
    <bpmn:laneSet id="lanes">
      <bpmn:lane id="lane_clerk" name="clerk">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>check</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="lane_manager" name="manager"><bpmn:flowNodeRef>approve</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="lane_director" name="director">
        <bpmn:flowNodeRef>sign</bpmn:flowNodeRef><bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="check" name="Check">
      <bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing></bpmn:userTask>
    <bpmn:userTask id="approve" name="Approve">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:userTask id="sign" name="Sign off">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="check"/>
    <bpmn:sequenceFlow id="f1" sourceRef="check" targetRef="approve"/>
    <bpmn:sequenceFlow id="f2" sourceRef="approve" targetRef="sign"/>
    <bpmn:sequenceFlow id="f3" sourceRef="sign" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

# One step: called with the instance's handle (None to start); returns the handle.
Step = Callable[[Any, str, str], Any]


def connect(path: Path, *, wal: bool) -> sqlite3.Connection:
    """Autocommit connection: each step opens its own ``BEGIN IMMEDIATE`` ... ``COMMIT``."""
    conn = sqlite3.connect(path, isolation_level=None)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    return conn


@contextmanager
def step_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
    """One step, read and written in one ``BEGIN IMMEDIATE`` ... ``COMMIT``."""
    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        yield cur
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")


class Floor:
    """transitions + one JSON row per instance: what a minimal durable state machine costs."""

    DONE = "SELECT count(*) FROM instance WHERE json_extract(doc, '$.state') = 'done'"

    def __init__(self, path: Path) -> None:
        from transitions import Machine

        self.conn = connect(path, wal=True)
        self.conn.execute("CREATE TABLE instance (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
        states = [s for s, _, _ in STEPS] + ["done"]
        self.roles = {state: role for state, role, _ in STEPS}
        self.machine = Machine(
            model=None,
            states=states,
            transitions=[
                {"trigger": "approve", "source": a, "dest": b}
                for a, b in zip(states, states[1:], strict=False)
            ],
            initial=None,
            auto_transitions=False,
        )

    def step(self, handle: str | None, user: str, note: str) -> str:
        with step_transaction(self.conn) as cur:
            if handle is None:
                handle = uuid.uuid4().hex
                doc = {"state": STEPS[0][0], "data": dict(START_DATA), "by": user}
                cur.execute("INSERT INTO instance VALUES (?, ?)", (handle, json.dumps(doc)))
            else:
                (text,) = cur.execute("SELECT doc FROM instance WHERE id = ?", (handle,)).fetchone()
                doc = json.loads(text)
                if self.roles[doc["state"]] != USER_ROLES[user]:
                    raise PermissionError(f"{user} may not act on {doc['state']}")
                model = type("Instance", (), {})()
                self.machine.add_model(model, initial=doc["state"])
                model.approve()
                self.machine.remove_model(model)
                doc["state"] = model.state
                doc["data"]["note"] = note
                doc["by"] = user
                cur.execute("UPDATE instance SET doc = ? WHERE id = ?", (json.dumps(doc), handle))
        return handle

    def close(self) -> None:
        self.conn.close()


class Spiff:
    """SpiffWorkflow 3 with its JSON serializer, stored like spiff-example-cli's SQLite
    serializer does: the spec once, each workflow as one JSON row without its spec."""

    DONE = "SELECT count(*) FROM workflow WHERE json_extract(serialization, '$.completed')"

    def __init__(self, path: Path, *, wal: bool) -> None:
        from lxml import etree
        from SpiffWorkflow.bpmn import BpmnWorkflow
        from SpiffWorkflow.bpmn.parser import BpmnParser
        from SpiffWorkflow.bpmn.serializer import DEFAULT_CONFIG, BpmnWorkflowSerializer
        from SpiffWorkflow.bpmn.serializer.default import BpmnWorkflowConverter
        from SpiffWorkflow.bpmn.serializer.default.workflow import WorkflowConverter
        from SpiffWorkflow.util.task import TaskState

        class WithoutSpec(BpmnWorkflowConverter):
            """spiff-example-cli's converter: the spec is stored once, not in every row."""

            def to_dict(self, workflow: Any) -> dict:
                dct = WorkflowConverter.to_dict(self, workflow)
                dct["subprocesses"] = {}
                dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
                return dct

        self.BpmnWorkflow = BpmnWorkflow
        self.ready = TaskState.READY
        parser = BpmnParser()
        parser.add_bpmn_xml(etree.fromstring(BPMN.encode()), filename="approval3.bpmn")
        self.spec = parser.get_spec("approval3")
        self.serializer = BpmnWorkflowSerializer(
            BpmnWorkflowSerializer.configure({**DEFAULT_CONFIG, BpmnWorkflow: WithoutSpec})
        )
        self.conn = connect(path, wal=wal)
        self.conn.executescript(
            "CREATE TABLE workflow_spec (id TEXT PRIMARY KEY, serialization TEXT NOT NULL);"
            "CREATE TABLE workflow (id TEXT PRIMARY KEY,"
            " workflow_spec_id TEXT NOT NULL REFERENCES workflow_spec(id),"
            " serialization TEXT NOT NULL);"
        )
        self.spec_id = str(uuid.uuid4())
        self.conn.execute(
            "INSERT INTO workflow_spec VALUES (?, ?)",
            (self.spec_id, json.dumps(self.serializer.to_dict(self.spec))),
        )

    def _dump(self, workflow: Any) -> str:
        dct = self.serializer.to_dict(workflow)
        dct[self.serializer.VERSION_KEY] = self.serializer.VERSION
        return json.dumps(dct)

    def _load(self, cur: sqlite3.Cursor, handle: str) -> Any:
        wf_text, spec_text = cur.execute(
            "SELECT w.serialization, s.serialization FROM workflow w"
            " JOIN workflow_spec s ON s.id = w.workflow_spec_id WHERE w.id = ?",
            (handle,),
        ).fetchone()
        dct = json.loads(wf_text)
        dct["spec"] = json.loads(spec_text)
        dct["subprocess_specs"] = {}
        self.serializer.migrate(dct)
        return self.serializer.from_dict(dct)

    def step(self, handle: str | None, user: str, note: str) -> str:
        with step_transaction(self.conn) as cur:
            if handle is None:
                workflow = self.BpmnWorkflow(self.spec)
                workflow.data.update(START_DATA)
                workflow.do_engine_steps()
                handle = str(uuid.uuid4())
                cur.execute(
                    "INSERT INTO workflow VALUES (?, ?, ?)",
                    (handle, self.spec_id, self._dump(workflow)),
                )
            else:
                workflow = self._load(cur, handle)
                task = workflow.get_next_task(state=self.ready, manual=True)
                if task.task_spec.lane != USER_ROLES[user]:
                    raise PermissionError(f"{user} may not act on {task.task_spec.name}")
                task.data.update({"note": note, "by": user})
                task.run()
                workflow.do_engine_steps()
                cur.execute(
                    "UPDATE workflow SET serialization = ? WHERE id = ?",
                    (self._dump(workflow), handle),
                )
        return handle

    def close(self) -> None:
        self.conn.close()


class Shenpi:
    """Shenpi through the Workflow facade, exactly as ``run.py start``/``act`` drive it."""

    DONE = "SELECT count(*) FROM instances WHERE state = 'done'"

    def __init__(self, path: Path) -> None:
        from service.workflow import Workflow
        from storage.store import Store

        procs = path.parent / "processes"
        procs.mkdir()
        (procs / "org.yaml").write_text(ORG_YAML, encoding="utf-8")
        (procs / "approval3.yaml").write_text(PROCESS_YAML, encoding="utf-8")
        self.store = Store.open(f"sqlite:///{path}")
        self.wf = Workflow(self.store, procs, clock=lambda: datetime.now(UTC))
        self.wf.deploy(now=T0)
        self.now = T0

    def step(self, handle: Any, user: str, note: str) -> Any:
        self.now += timedelta(milliseconds=10)
        if handle is None:
            return self.wf.start("approval3", user, START_DATA, now=self.now)
        return self.wf.act(handle.tasks[0].id, "approve", user, {"note": note}, now=self.now)

    def close(self) -> None:
        self.store.close()


def drive(step: Step, n: int) -> tuple[float, list[float]]:
    """n instances, start + 3 approvals each; returns (seconds, per-step latencies)."""
    latencies: list[float] = []
    clock = time.perf_counter
    began = clock()
    for i in range(n):
        t = clock()
        handle = step(None, REQUESTER, "")
        latencies.append(clock() - t)
        for _state, _role, user in STEPS:
            t = clock()
            handle = step(handle, user, f"ok {i}")
            latencies.append(clock() - t)
    return clock() - began, latencies


SYSTEMS: dict[str, Callable[[Path], Any]] = {
    "spiff-wal": lambda p: Spiff(p, wal=True),
    "spiff-journal": lambda p: Spiff(p, wal=False),
    "floor": Floor,
    "shenpi": Shenpi,
}
LABELS = {
    "spiff-wal": "SpiffWorkflow {spiff}, SQLite WAL, synchronous FULL",
    "spiff-journal": "SpiffWorkflow {spiff}, SQLite default journal",
    "floor": "`transitions` {transitions} + one JSON row per step, WAL, FULL",
    "shenpi": "Shenpi (`Workflow`, SQLite WAL, FULL)",
}


def run_once(name: str, n: int) -> tuple[float, list[float]]:
    """One round of one system on a fresh database in its own temporary folder."""
    with tempfile.TemporaryDirectory(prefix=f"peers-{name}-") as tmp:
        system = SYSTEMS[name](Path(tmp) / "bench.db")
        try:
            drive(system.step, WARMUP)
            result = drive(system.step, n)
        finally:
            system.close()
        # every instance must have run to its end, or the rate means nothing
        with sqlite3.connect(Path(tmp) / "bench.db") as conn:
            (done,) = conn.execute(system.DONE).fetchone()
        if done != WARMUP + n:
            raise SystemExit(f"{name}: {done} instances completed, expected {WARMUP + n}")
        return result


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for key, dist in (("spiff", "SpiffWorkflow"), ("transitions", "transitions")):
        try:
            found[key] = version(dist)
        except PackageNotFoundError:
            found[key] = "?"
    return found


def fsync_us(samples: int = 200) -> tuple[float, float]:
    """Median and p90 of writing 4 KiB and fsyncing it, in the folder the databases use:
    on a shared machine this, more than the CPU, moves every figure below."""
    times = []
    with tempfile.TemporaryDirectory(prefix="peers-fsync-") as tmp:
        fd = os.open(Path(tmp) / "probe", os.O_WRONLY | os.O_CREAT)
        try:
            for i in range(samples):
                os.pwrite(fd, os.urandom(4096), (i % 16) * 4096)
                t = time.perf_counter()
                os.fsync(fd)
                times.append((time.perf_counter() - t) * 1e6)
        finally:
            os.close(fd)
    return statistics.median(times), pct(times, 0.9)


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    fsync_p50, fsync_p90 = fsync_us()
    return (
        f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"{platform.platform(terse=True)}, CPython {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"load average {load}, fsync of 4 KiB {fsync_p50:.0f} µs (p90 {fsync_p90:.0f} µs)"
    )


def report(results: dict[str, list[tuple[float, list[float]]]]) -> None:
    names = versions()
    rate = {}
    print("| system | steps/s | per round | p50 per step | p99 per step | Shenpi / it |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, rounds in results.items():
        steps = sum(len(lat) for _, lat in rounds)
        rate[name] = steps / sum(sec for sec, _ in rounds)
    for name, rounds in results.items():
        lat = [x for _, part in rounds for x in part]
        per_round = " / ".join(f"{len(part) / sec:,.0f}" for sec, part in rounds)
        ratio = rate["shenpi"] / rate[name] if "shenpi" in rate else float("nan")
        print(
            f"| {LABELS[name].format(**names)} | {rate[name]:,.0f} | {per_round} "
            f"| {pct(lat, 0.5) * 1000:.2f} ms | {pct(lat, 0.99) * 1000:.2f} ms | {ratio:.2f} |"
        )
    print(
        json.dumps(
            {
                name: {
                    "steps_per_s": round(rate[name], 1),
                    "round_steps_per_s": [round(len(p) / s, 1) for s, p in rounds],
                    "mean_ms": round(statistics.mean(x for _, p in rounds for x in p) * 1000, 3),
                }
                for name, rounds in results.items()
            }
        )
    )


def profile(n: int) -> None:
    """cProfile of n Shenpi instances (after warm-up); times are per step."""
    import cProfile
    import pstats

    with tempfile.TemporaryDirectory(prefix="peers-profile-") as tmp:
        system = Shenpi(Path(tmp) / "bench.db")
        drive(system.step, WARMUP)
        prof = cProfile.Profile()
        prof.enable()
        seconds, lat = drive(system.step, n)
        prof.disable()
        system.close()
    print(
        f"# {len(lat)} steps in {seconds:.2f} s under cProfile: {seconds / len(lat) * 1e6:.0f} µs"
    )
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="instances per system per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--skip-spiff", action="store_true", help="run without SpiffWorkflow")
    parser.add_argument("--only", nargs="*", choices=list(SYSTEMS), help="these systems only")
    parser.add_argument("--profile", type=int, default=0, help="profile N Shenpi instances")
    args = parser.parse_args()
    print(f"# {machine()}", flush=True)
    if args.profile:
        profile(args.profile)
        return
    names = args.only or list(SYSTEMS)
    if args.skip_spiff:
        names = [s for s in names if not s.startswith("spiff")]
    else:
        try:
            import SpiffWorkflow  # noqa: F401
        except ImportError:
            sys.exit(
                "SpiffWorkflow is not installed here: see this script's docstring, or --skip-spiff"
            )
    results: dict[str, list[tuple[float, list[float]]]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names:
            seconds, lat = run_once(name, args.n)
            results[name].append((seconds, lat))
            print(f"# round {r + 1} {name}: {len(lat) / seconds:,.0f} steps/s", flush=True)
    print(f"# end: {machine()}")
    report(results)


if __name__ == "__main__":
    main()
