"""100,000 timers due at once, fired by tick; and the cost of an idle tick.

    python bench/bench_timers.py --n 100000
    python bench/bench_timers.py --n 100000 --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

Each instance of a one-task process has one deadline timer. All fall due at the same
instant; one tick fires them all (in batches of --batch per commit) and the largest page
and batch it used are reported (they must not exceed --batch whatever the backlog).
Before that an idle tick (nothing due) is timed with 1,000 and with 2N timers waiting in
the future. PostgreSQL runs when --pg, SHENPI_BENCH_PG_URL or SHENPI_TEST_PG_URL names
a server (a scratch database is created and dropped). The instances are made by starting
one through the engine and copying its rows in SQL (set-up, not the measure; N engine
steps would take longer than the tick). Not a test: figures go to docs/benchmarks.md.
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
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.timekeeper import tick  # noqa: E402
from service.workflow import Workflow  # noqa: E402
from storage.store import Store  # noqa: E402
from storage.tables import instances, task_roles, tasks, timers  # noqa: E402

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
    """n instances of ``name`` started at ``at``: one engine step, then n - 1 copies of
    its instance, open task, task roles and pending timers (ids suffixed ``.k``)."""
    template = wf.start(name, "wang.fang", {}, now=at).id
    if n <= 1:
        return
    numbers = "WITH RECURSIVE g(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM g WHERE k < :n) "
    copies = (
        (instances, {"id"}, "t.id = :tpl"),
        (tasks, {"id", "instance_id"}, "t.instance_id = :tpl"),
        (task_roles, {"task_id"}, "t.task_id IN (SELECT id FROM tasks WHERE instance_id = :tpl)"),
        (timers, {"id", "instance_id", "task_id"}, "t.instance_id = :tpl AND t.status = 'pending'"),
    )
    with wf.store.engine.begin() as conn:
        for table, id_cols, where in copies:
            names = [c.name for c in table.c]
            select = ", ".join(
                f"replace(t.\"{c}\", :tpl, :tpl || '.' || g.k)" if c in id_cols else f't."{c}"'
                for c in names
            )
            cols = ", ".join(f'"{c}"' for c in names)
            conn.execute(
                sa.text(
                    f"INSERT INTO {table.name} ({cols}) {numbers}"
                    f"SELECT {select} FROM {table.name} t, g WHERE {where}"
                ),
                {"tpl": template, "n": n - 1},
            )
        if conn.dialect.name == "postgresql":
            # this machine's server runs without autovacuum; give the planner real counts
            for table in ("instances", "tasks", "task_roles", "timers", "audit_log", "outbox"):
                conn.execute(sa.text(f"ANALYZE {table}"))


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
    pages: list[int] = []
    batches: list[int] = []
    reading = [0.0]
    holding = [0.0]  # the longest apply_batch call (its plans and its transaction)
    read, write = wf.store.due_timers, wf.store.apply_batch

    def due_timers(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        page = read(*args, **kwargs)
        reading[0] += time.perf_counter() - began
        pages.append(len(page))
        return page

    def apply_batch(steps: Any, recorded_at: Any) -> Any:
        began = time.perf_counter()
        result = write(steps, recorded_at)
        batches.append(len(steps))
        holding[0] = max(holding[0], time.perf_counter() - began)
        return result

    wf.store.due_timers, wf.store.apply_batch = due_timers, apply_batch  # type: ignore[method-assign]
    began = time.perf_counter()
    report = tick(wf, T0 + timedelta(hours=2), batch=batch)
    seconds = time.perf_counter() - began
    assert report.fired == n, report
    assert max(pages) <= batch and max(batches) <= batch, (max(pages), max(batches))
    wf.store.close()
    shutil.rmtree(folder)
    return {
        "db": label,
        "timers_fired": report.fired,
        "seconds": round(seconds, 2),
        "timers_per_s": round(report.fired / seconds, 1),
        "batch": batch,
        "largest_page": max(pages),
        "largest_batch": max(batches),
        "commits": len(batches),
        "seconds_reading_pages": round(reading[0], 2),
        "longest_batch_s": round(holding[0], 3),
        "idle_tick_ms_1000_waiting": round(idle_small, 3),
        f"idle_tick_ms_{n + n}_waiting": round(idle_large, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--pg",
        default=os.environ.get("SHENPI_BENCH_PG_URL") or os.environ.get("SHENPI_TEST_PG_URL", ""),
    )
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
