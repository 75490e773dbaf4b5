"""100,000 timers due at once, fired by tick; and the cost of an idle tick.

    python bench/bench_timers.py --n 100000
    python bench/bench_timers.py --n 100000 --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

Each instance of a one-task process has one deadline timer. All fall due at the same
instant; one tick fires them all (in batches of --batch per commit). Then an idle tick
(nothing due) is timed with 1,000 and with N timers waiting in the future. Not a test:
figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.runtime import Start, fire  # noqa: E402
from service.timekeeper import tick  # noqa: E402
from service.workflow import Workflow, new_id  # noqa: E402
from storage.store import Store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
PROCESS = """\
process: ping
title: Ping
start: {to: wait}
states:
  wait:
    deadline: {hours: HOURS}
    task: {role: complaint_clerk, actions: {done: {to: end}}}
  end: {final: true}
"""


def populate(wf: Workflow, name: str, n: int, at: datetime) -> None:
    """Start n instances in batches (one commit per 500: this is set-up, not the measure)."""
    version = wf.latest_version(name)
    proc = wf.process(name, version)
    actor = wf.org.actor("wang.fang")
    steps = []
    for _ in range(n):
        steps.append((fire(proc, None, Start(new_id(), version), actor, {}, at), None))
        if len(steps) == 500:
            wf.store.apply_batch(steps, datetime.now(UTC))
            steps = []
    if steps:
        wf.store.apply_batch(steps, datetime.now(UTC))


def idle_tick_ms(wf: Workflow, now: datetime, rounds: int = 50) -> float:
    began = time.perf_counter()
    for _ in range(rounds):
        report = tick(wf, now)
        assert report.fired == 0
    return (time.perf_counter() - began) / rounds * 1000


def run(label: str, url: str, n: int, batch: int) -> dict:
    folder = Path(tempfile.mkdtemp())
    shutil.copy(ROOT / "processes" / "org.yaml", folder / "org.yaml")
    (folder / "ping.yaml").write_text(PROCESS.replace("HOURS", "1"), encoding="utf-8")
    (folder / "later.yaml").write_text(
        PROCESS.replace("ping", "later").replace("HOURS", "10000"), encoding="utf-8"
    )
    wf = Workflow(Store.open(url), folder)
    wf.deploy(now=T0)
    populate(wf, "later", 1000, T0)
    idle_small = idle_tick_ms(wf, T0 + timedelta(minutes=30))
    populate(wf, "ping", n, T0)
    populate(wf, "later", n - 1000, T0)
    idle_large = idle_tick_ms(wf, T0 + timedelta(minutes=30))
    began = time.perf_counter()
    report = tick(wf, T0 + timedelta(hours=2), batch=batch)
    seconds = time.perf_counter() - began
    assert report.fired == n, report
    wf.store.close()
    shutil.rmtree(folder)
    return {
        "db": label,
        "timers_fired": report.fired,
        "seconds": round(seconds, 2),
        "timers_per_s": round(report.fired / seconds, 1),
        "batch": batch,
        "idle_tick_ms_1000_waiting": round(idle_small, 3),
        f"idle_tick_ms_{n + n}_waiting": round(idle_large, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--pg", default=os.environ.get("SHENPI_TEST_PG_URL", ""))
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    args = parser.parse_args()
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            print(
                json.dumps(run("sqlite", f"sqlite:///{tmp}/t.db", args.n, args.batch)), flush=True
            )
    if args.only in (None, "postgres") and args.pg:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_actions import make_pg_db

        url, drop = make_pg_db(args.pg)
        try:
            print(json.dumps(run("postgres", url, args.n, args.batch)), flush=True)
        finally:
            drop()


if __name__ == "__main__":
    main()
