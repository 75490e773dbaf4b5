"""Whole CLI processes, as a person or a script runs them: start-up included.

Deploys the shipped processes into a fresh SQLite file, starts some instances, then runs
``run.py --help``, ``tasks --as U``, ``show ID`` and ``act TASK ...`` as separate Python
processes, round after round (the commands interleaved, so a slow spell on a shared
machine hits them alike), and prints the median, the minimum and the maximum of each.
Every ``act`` takes a task no earlier run took, so each one is a real step.

    python bench/bench_cli.py --runs 15 --instances 500
    python bench/bench_cli.py --compare /tmp/main-checkout   # both, interleaved

The first call of each command (compiled-definition cache and bytecode cache empty) is
run once before the rounds and reported apart as "first"; the rounds run with both, as
an installed copy would. Not a test: figures
go to docs/benchmarks.md with the machine and the date; hyperfine is not needed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROCESSES = ROOT / "processes"
PROCESS = "suggestion_box"
USER = "zhao.lei"  # suggestion_box_keeper: the opening task waits for this role
NOW = datetime(2026, 10, 15, 2, 0, tzinfo=UTC)


def fill(db_url: str, count: int) -> list[tuple[str, str]]:
    """Deploy and start ``count`` instances in this process; (instance id, open task id)."""
    from service.workflow import Workflow
    from storage.db import open_database
    from storage.store import Store

    wf = Workflow(Store(open_database(db_url, create=True)), PROCESSES)
    wf.deploy([], by="system", now=NOW)
    out = []
    for _ in range(count):
        snapshot = wf.start(PROCESS, USER, {}, NOW)
        out.append((snapshot.id, snapshot.tasks[0].id))
    return out


def run(root: Path, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """One whole ``python run.py ...`` (or ``python -c ...``) process: (wall seconds, CPU
    seconds, user + system).

    The CPU time says what the command costs even on a machine busy with other work,
    where the wall time also counts the waits for a core.
    """
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        script = [] if args[0] == "-c" else [str(root / "run.py")]
        child = subprocess.Popen(
            [sys.executable, *script, *args],
            cwd=root,
            env=env | {"PYTHONPATH": str(root)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            err.seek(0)
            message = err.read().decode(errors="replace")
            raise SystemExit(f"run.py {' '.join(args)}: exit {child.returncode}\n{message}")
    return elapsed, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each command")
    parser.add_argument("--instances", type=int, default=500, help="instances in the database")
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="CHECKOUT",
        help="also time another checkout of Shenpi (e.g. main), interleaved with this one",
    )
    opts = parser.parse_args()
    roots = {"this": ROOT} | ({"other": opts.compare.resolve()} if opts.compare else {})

    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/bench.db"
        started = fill(db_url, opts.instances + len(roots) * (opts.runs + 1) + 1)
        env = dict(
            os.environ,
            SHENPI_DB=db_url,
            SHENPI_PROCESSES=str(PROCESSES),
            SHENPI_CACHE_DIR=str(Path(tmp) / "cache"),
            # bytecode as an installed copy has it (a shell may switch writing it off),
            # kept apart from the source trees
            PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"),
        )
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        shown = started[0][0]
        acts = iter(started[1:])

        def act_args() -> list[str]:
            task = next(acts)[1]
            return ["act", task, "recorded", "--as", USER, "--set", "items_found=0"]

        commands = {
            # references to scale the figures by on a machine busier or slower than ours
            "(python -c pass)": lambda: ["-c", "pass"],
            "(python -c 'import sqlalchemy')": lambda: ["-c", "import sqlalchemy"],
            "run.py --help": lambda: ["--help"],
            f"tasks --as {USER}": lambda: ["tasks", "--as", USER],
            "show ID": lambda: ["show", shown],
            "act TASK recorded": act_args,
        }
        names = [
            f"{label}: {name}" if len(roots) > 1 else name for label in roots for name in commands
        ]
        first: dict[str, tuple[float, float]] = {}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for label, root in roots.items():
            for name, make in commands.items():
                key = f"{label}: {name}" if len(roots) > 1 else name
                first[key] = run(root, make(), env)
        for _ in range(opts.runs):
            for name, make in commands.items():
                for label, root in roots.items():
                    key = f"{label}: {name}" if len(roots) > 1 else name
                    times[key].append(run(root, make(), env))

    print(f"{opts.runs} runs each, {opts.instances}+ instances of {PROCESS}, SQLite file")
    for label, root in roots.items():
        print(f"{label}: {root}")
    load = os.getloadavg()[0]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s), load {load:.2f} at the end")
    print(f"{'ms':<40} {'wall median':>11} {'min':>6} {'max':>6} {'cpu median':>11} {'min':>6}")
    for name, values in times.items():
        wall = [v[0] * 1000 for v in values]
        cpu = [v[1] * 1000 for v in values]
        print(
            f"{name:<40} {statistics.median(wall):>11.0f} {min(wall):>6.0f} {max(wall):>6.0f} "
            f"{statistics.median(cpu):>11.0f} {min(cpu):>6.0f}"
        )
    print(f"{'first call (no caches)':<40} {'wall':>11} {'cpu':>6}")
    for name, (wall_s, cpu_s) in first.items():
        print(f"{name:<40} {wall_s * 1000:>11.0f} {cpu_s * 1000:>6.0f}")


if __name__ == "__main__":
    main()
