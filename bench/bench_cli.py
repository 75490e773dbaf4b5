"""Whole CLI processes, as a person or a script runs them: start-up included.

Deploys the shipped processes into a fresh SQLite file, starts some instances, then runs
``run.py --help``, ``tasks --as U``, ``show ID`` and ``act TASK ...`` as separate Python
processes, round after round (the commands interleaved, so a slow spell on a shared
machine hits them alike), and prints the median, the minimum and the maximum of each.
Every ``act`` takes a task no earlier run took, so each one is a real step.

    python bench/bench_cli.py --runs 15 --instances 500
    python bench/bench_cli.py --compare /tmp/main-checkout   # both, interleaved

The first call of each command (compiled-definition cache empty, files not in the page
cache) is run once before the rounds and reported apart as "first". Not a test: figures
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


def run(root: Path, args: list[str], env: dict[str, str]) -> float:
    """One whole ``python run.py ...`` process, in seconds; a failure stops the bench."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(root / "run.py"), *args],
        cwd=root,
        env=env | {"PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"run.py {' '.join(args)}: exit {done.returncode}\n{done.stderr.decode()}")
    return elapsed


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
        )
        shown = started[0][0]
        acts = iter(started[1:])

        def act_args() -> list[str]:
            task = next(acts)[1]
            return ["act", task, "recorded", "--as", USER, "--set", "items_found=0"]

        commands = {
            "run.py --help": lambda: ["--help"],
            f"tasks --as {USER}": lambda: ["tasks", "--as", USER],
            "show ID": lambda: ["show", shown],
            "act TASK recorded": act_args,
        }
        names = [
            f"{label}: {name}" if len(roots) > 1 else name for label in roots for name in commands
        ]
        first: dict[str, float] = {}
        times: dict[str, list[float]] = {name: [] for name in names}
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
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s), load {os.getloadavg()[0]:.2f}"
    )
    print(f"{'command':<32} {'median ms':>10} {'min':>7} {'max':>7} {'first':>7}")
    for name, values in times.items():
        ms = [v * 1000 for v in values]
        print(
            f"{name:<32} {statistics.median(ms):>10.0f} {min(ms):>7.0f} {max(ms):>7.0f} "
            f"{first[name] * 1000:>7.0f}"
        )


if __name__ == "__main__":
    main()
