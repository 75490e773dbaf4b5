"""Throughput of the complaint process driven end to end, on SQLite and PostgreSQL.

Each instance: start, accept, resolve, close (1 start + 3 actions, each its own committed
transaction with fsync on: SQLite WAL + synchronous=FULL; PostgreSQL default fsync=on).
Prints instances/s, actions/s, p50/p99 latency per action and peak RSS, then the
per-action cost at a small and a large number of stored instances; with two or more
``--scale`` sizes also ``p99_growth`` (p99 at the largest size / at the smallest: issue 8
asks for at most 1.5 from 1,000 to 100,000) and ``rss_growth_mb`` (memory should stay flat).

    python bench/bench_actions.py --n 2000
    python bench/bench_actions.py --n 2000 --scale 1000,100000
    python bench/bench_actions.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

Not a test: figures go to docs/benchmarks.md with the machine and the date.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.workflow import Workflow  # noqa: E402
from storage.store import Store  # noqa: E402

PROCESSES = Path(__file__).resolve().parents[1] / "processes"
T0 = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)
START = {"kind": "complaint", "customer": "c", "contact": "1", "content": "x"}


def drive(wf: Workflow, n: int, clock: list[datetime]) -> tuple[float, list[float]]:
    """Run n instances through every step; returns (seconds, per-action latencies)."""
    latencies: list[float] = []
    began = time.perf_counter()
    for _ in range(n):
        clock[0] += timedelta(seconds=1)
        t = time.perf_counter()
        snap = wf.start("complaint", "wang.fang", START, now=clock[0])
        latencies.append(time.perf_counter() - t)
        for user, action, data in (
            ("zhao.lei", "accept", {"first_contact": "called"}),
            ("li.qiang", "resolve", {"findings": "f", "resolution": "r"}),
            ("wang.fang", "close", {"callback_result": "satisfied"}),
        ):
            task = snap.tasks[0].id
            t = time.perf_counter()
            snap = wf.act(task, action, user, data, now=clock[0])
            latencies.append(time.perf_counter() - t)
    return time.perf_counter() - began, latencies


def _worker(url: str, n: int, seed: int, out) -> None:  # noqa: ANN001
    wf = Workflow(Store.open(url), PROCESSES, clock=lambda: datetime.now(UTC))
    clock = [T0 + timedelta(days=seed)]
    drive(wf, 5, clock)  # warm up this process's caches
    out.put(drive(wf, n, clock))
    wf.store.close()


def drive_processes(url: str, n: int, procs: int) -> tuple[float, list[float]]:
    """n instances split over `procs` OS processes (e.g. several workers on one machine)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    out = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(url, n // procs, i, out)) for i in range(procs)]
    began = time.perf_counter()
    for w in workers:
        w.start()
    parts = [out.get() for _ in workers]
    seconds = time.perf_counter() - began
    for w in workers:
        w.join()
    return seconds, [x for _, lat in parts for x in lat]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fill(wf: Workflow, target: int, clock: list[datetime]) -> None:
    """Store `target` instances (half completed, half waiting) so queries face real tables."""
    have = len(wf.store.instance_page(limit=target + 1).items)
    for i in range(have, target):
        clock[0] += timedelta(milliseconds=10)
        snap = wf.start("complaint", "wang.fang", START, now=clock[0])
        if i % 2 == 0:
            wf.act(snap.tasks[0].id, "accept", "zhao.lei", {"first_contact": "c"}, now=clock[0])
        if i % 5000 == 0 or i == target - 1:
            analyze(wf)


def analyze(wf: Workflow) -> None:
    """What autovacuum does on a default PostgreSQL as tables grow (this machine runs with
    autovacuum=off): without fresh statistics, prepared statements keep plans made on the
    empty tables, and one of them reads every open task per action."""
    if wf.store.dialect != "postgresql":
        return
    import sqlalchemy as sa

    with wf.store.engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
        conn.commit()


def make_pg_db(url: str) -> tuple[str, callable]:
    import psycopg

    base = url.replace("postgresql+psycopg://", "postgresql://")
    name = f"shenpi_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.rsplit("/", 1)[0] + "/" + name, drop


def run(label: str, url: str, n: int, scale: list[int], procs: int = 1) -> dict:
    store = Store.open(url)
    wf = Workflow(store, PROCESSES, clock=lambda: datetime.now(UTC))
    wf.deploy(now=T0)
    clock = [T0]
    drive(wf, 20, clock)  # warm up caches and the compiled process
    if procs > 1:
        seconds, lat = drive_processes(url, n, procs)
    else:
        seconds, lat = drive(wf, n, clock)
    result = {
        "db": label,
        "processes": procs,
        "instances": n,
        "actions": len(lat),
        "seconds": round(seconds, 2),
        "instances_per_s": round(n / seconds, 1),
        "actions_per_s": round(len(lat) / seconds, 1),
        "p50_ms": round(pct(lat, 0.50) * 1000, 2),
        "p99_ms": round(pct(lat, 0.99) * 1000, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "scale": [],
    }
    for size in scale:
        fill(wf, size, clock)
        sample = max(200, n // 4)
        secs, lat = drive(wf, sample // 4, clock)
        result["scale"].append(
            {
                "stored_instances": size,
                "actions_per_s": round(len(lat) / secs, 1),
                "mean_ms": round(statistics.mean(lat) * 1000, 3),
                "p99_ms": round(pct(lat, 0.99) * 1000, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    if len(result["scale"]) > 1:
        # issue 8's aim: p99 at the largest size within 1.5x of the smallest, memory flat
        first, last = result["scale"][0], result["scale"][-1]
        result["p99_growth"] = round(last["p99_ms"] / first["p99_ms"], 2)
        result["rss_growth_mb"] = round(last["peak_rss_mb"] - first["peak_rss_mb"], 1)
    store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="instances to drive")
    parser.add_argument("--scale", default="", help="stored-instance sizes, e.g. 1000,100000")
    parser.add_argument(
        "--pg", default=os.environ.get("SHENPI_TEST_PG_URL", ""), help="PostgreSQL URL"
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    parser.add_argument("--procs", type=int, default=1, help="worker processes driving at once")
    args = parser.parse_args()
    scale = [int(s) for s in args.scale.split(",") if s]
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()} "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}"
    )
    results = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(run("sqlite", f"sqlite:///{tmp}/bench.db", args.n, scale, args.procs))
            print(json.dumps(results[-1]), flush=True)
    if args.only in (None, "postgres") and args.pg:
        url, drop = make_pg_db(args.pg)
        try:
            results.append(run("postgres", url, args.n, scale, args.procs))
            print(json.dumps(results[-1]), flush=True)
        finally:
            drop()


if __name__ == "__main__":
    main()
