"""Decisions over HTTP with many clients at once, beside the sequential in-process figure.

For each database (a SQLite file with the production settings: WAL, synchronous=FULL; a
fresh PostgreSQL database), in one run:

1. ``in-process, 1 thread``: ``Workflow.act`` called in a loop on a plain Store, the path
   a CLI command takes (without the process start-up), one committed transaction each;
2. ``in-process, N threads``: N threads sharing one Workflow, as the server's request
   threads do, with group commit on and off: what group commit itself changes;
3. ``HTTP, N clients``: the real server (``create_app`` served by uvicorn through
   ``api.server.run``, as ``serve`` does) in a process of its own on loopback, driven by
   ``--clients`` httpx clients in threads, each deciding distinct tasks
   (``POST /v1/tasks/{id}/decision``) as fast as answers come back; with group commit
   on and off whatever the database (``serve`` itself turns it on for SQLite only);
4. the same with group commit and one client (what HTTP itself costs per decision);
5. with ``--servers N``, the 32 clients spread over N server processes on the database;
6. ``in-process, 1 thread`` again: how much the machine's load drifted meanwhile.

Every decision is the complaint process's ``accept`` on its own instance, so runs compare
like with like. Prints one JSON line per run: decisions/s, p50/p99 per decision, the
ratio to the mean of the two sequential runs, steps per commit with group commit, and
the load average when the run began (the machine is shared).

    python bench/bench_http.py --n 2000
    python bench/bench_http.py --n 2000 --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

Not a test: figures go to docs/benchmarks.md with the machine, the date and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_actions import PROCESSES, START, T0, make_pg_db, pct  # noqa: E402
from service.workflow import Workflow  # noqa: E402
from storage.groupcommit import pays_off  # noqa: E402
from storage.store import Store  # noqa: E402

ACCEPT = {"first_contact": "called"}
APPROVER = "zhao.lei"
WARMUP = 64  # decisions before each timed run (compiles, pool connections, keep-alives)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


def open_tasks(wf: Workflow, n: int) -> list[str]:
    """n new complaint instances, each waiting on its ``accept`` task."""
    return [wf.start("complaint", "wang.fang", START).tasks[0].id for _ in range(n)]


def summary(label: str, seconds: float, lat: list[float], **more: Any) -> dict[str, Any]:
    return {
        "run": label,
        "decisions": len(lat),
        "seconds": round(seconds, 2),
        "decisions_per_s": round(len(lat) / seconds, 1),
        "p50_ms": round(pct(lat, 0.50) * 1000, 2),
        "p99_ms": round(pct(lat, 0.99) * 1000, 2),
        **more,
    }


# ---------------------------------------------------------------------- in-process


def sequential(wf: Workflow, tasks: list[str]) -> dict[str, Any]:
    """``Workflow.act`` one after the other in this thread: the CLI's path."""
    for task in tasks[:WARMUP]:
        wf.act(task, "accept", APPROVER, ACCEPT)
    timed = tasks[WARMUP:]
    before = load()
    lat = []
    began = time.perf_counter()
    for task in timed:
        t = time.perf_counter()
        wf.act(task, "accept", APPROVER, ACCEPT)
        lat.append(time.perf_counter() - t)
    return summary("in-process, 1 thread", time.perf_counter() - began, lat, load=before)


def threaded(url: str, tasks: list[str], threads: int, group_commit: bool) -> dict[str, Any]:
    """``threads`` threads sharing one Workflow, as the server's request threads do, but
    without HTTP: what group commit itself changes."""
    wf = Workflow.open(url, PROCESSES, group_commit=group_commit)
    try:
        for task in tasks[:WARMUP]:
            wf.act(task, "accept", APPROVER, ACCEPT)
        todo: queue.SimpleQueue[str] = queue.SimpleQueue()
        for task in tasks[WARMUP:]:
            todo.put(task)
        lat: list[float] = []

        def worker() -> None:
            mine = []
            while True:
                try:
                    task = todo.get_nowait()
                except queue.Empty:
                    break
                t = time.perf_counter()
                wf.act(task, "accept", APPROVER, ACCEPT)
                mine.append(time.perf_counter() - t)
            lat.extend(mine)

        before = load()
        pool = [threading.Thread(target=worker) for _ in range(threads)]
        began = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        seconds = time.perf_counter() - began
        extra: dict[str, Any] = {"load": before}
        committer = getattr(wf.store, "committer", None)
        if committer is not None:  # warm-up included
            extra["steps_per_commit"] = round(committer.steps / max(1, committer.batches), 1)
    finally:
        wf.store.close()
    label = f"in-process, {threads} threads, group commit " + ("on" if group_commit else "off")
    return summary(label, seconds, lat, **extra)


# ---------------------------------------------------------------------- the server


def serve(url: str, group_commit: bool) -> None:
    """The server process: the app on a Workflow as ``serve`` builds it, on a free port
    (printed on stdout), until SIGTERM; then the committer's counters."""
    from api.app import ApiConfig, create_app
    from api.server import bind, run

    wf = Workflow.open(url, PROCESSES, group_commit=group_commit)
    app = create_app(wf, ApiConfig(rate_per_minute=0))  # no per-token limit: one token
    sock = bind("127.0.0.1", 0)
    print(sock.getsockname()[1], flush=True)
    # uvicorn raises the signal again once it has shut down; let that return, not kill
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        run(app, sock)
    finally:
        committer = getattr(wf.store, "committer", None)
        if committer is not None:
            print(json.dumps({"batches": committer.batches, "steps": committer.steps}))
        wf.store.close()


class Server:
    """``serve`` in a child process, stopped (SIGTERM) when the block ends."""

    def __init__(self, url: str, group_commit: bool, log: Path) -> None:
        args = [sys.executable, __file__, "--serve", url]
        if group_commit:
            args.append("--group-commit")
        self.log = log.open("ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            raise SystemExit(f"the server did not start (see {log}): {line!r}")
        self.base = f"http://127.0.0.1:{int(line)}"
        self.stats: dict[str, Any] = {}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        self.log.close()
        for line in out.splitlines():
            if line.startswith("{"):
                self.stats = json.loads(line)


def drive_http(
    bases: list[str], token: str, tasks: list[str], clients: int
) -> tuple[float, list[float]]:
    """``clients`` threads, each with its own httpx client (keep-alive) on one of the
    servers in turn, deciding the next task from a shared queue until none is left.
    Every answer must be 200."""
    import httpx

    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for task in tasks:
        todo.put(task)
    lat: list[float] = []
    failures: list[str] = []
    gate = threading.Barrier(clients + 1)
    headers = {"Authorization": f"Bearer {token}"}
    body = {"action": "accept", "variables": ACCEPT}

    def client(base: str) -> None:
        mine = []
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            http.get("/healthz")  # connect before the clock starts
            gate.wait()
            while True:
                try:
                    task = todo.get_nowait()
                except queue.Empty:
                    break
                t = time.perf_counter()
                res = http.post(f"/v1/tasks/{task}/decision", json=body)
                mine.append(time.perf_counter() - t)
                if res.status_code != 200:
                    failures.append(f"{task}: {res.status_code} {res.text[:200]}")
        lat.extend(mine)

    threads = [
        threading.Thread(target=client, args=(bases[i % len(bases)],)) for i in range(clients)
    ]
    for t in threads:
        t.start()
    gate.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - began
    if failures:
        raise SystemExit(f"{len(failures)} decisions failed, e.g. {failures[:3]}")
    return seconds, lat


def over_http(
    url: str,
    token: str,
    tasks: list[str],
    clients: int,
    group_commit: bool,
    log: Path,
    servers: int = 1,
) -> dict[str, Any]:
    running = [Server(url, group_commit, log) for _ in range(servers)]
    try:
        bases = [s.base for s in running]
        drive_http(bases, token, tasks[:WARMUP], min(clients, 8))
        before = load()
        seconds, lat = drive_http(bases, token, tasks[WARMUP:], clients)
    finally:
        for server in running:
            server.stop()
    label = f"HTTP, {clients} client{'s' if clients > 1 else ''}, " + (
        f"{servers} server processes, " if servers > 1 else ""
    )
    label += "group commit " + ("on" if group_commit else "off")
    extra: dict[str, Any] = {"load": before}
    stats = [s.stats for s in running if s.stats]
    if stats:
        # warm-up included; a step is one decision (no starts go through these servers)
        steps, batches = sum(s["steps"] for s in stats), sum(s["batches"] for s in stats)
        extra["steps_per_commit"] = round(steps / max(1, batches), 1)
    return summary(label, seconds, lat, **extra)


# ---------------------------------------------------------------------- one database


def run(
    label: str, url: str, n: int, clients: int, log: Path, servers: int = 1
) -> list[dict[str, Any]]:
    from service.tokens import issue_token

    wf = Workflow(Store.open(url), PROCESSES)
    wf.deploy(now=T0)
    token = issue_token(wf, APPROVER, ("read", "act"), None, "bench", datetime.now(UTC)).token
    single = max(200, n // 4)  # one client is slow: fewer decisions suffice
    runs = [  # (kind, clients, group commit, decisions); in-process again last: drift
        ("seq", 1, False, n),
        ("threads", clients, True, n),
        ("threads", clients, False, n),
        ("http", clients, True, n),
        ("http", clients, False, n),
        ("http", 1, True, single),
    ]
    if servers > 1:  # group commit as serve would choose it
        runs.append(("servers", clients, pays_off(url), n))
    runs.append(("seq", 1, False, n))
    tasks = open_tasks(wf, sum(count + WARMUP for *_, count in runs))
    results = []
    at = 0
    for kind, k, gc, count in runs:
        mine, at = tasks[at : at + count + WARMUP], at + count + WARMUP
        if kind == "seq":
            result = sequential(wf, mine)
        elif kind == "threads":
            result = threaded(url, mine, k, gc)
        elif kind == "servers":
            result = over_http(url, token, mine, k, gc, log, servers)
        else:
            result = over_http(url, token, mine, k, gc, log)
        results.append({"db": label, **result})
        print(json.dumps(results[-1]), flush=True)
    decided = len(wf.store.query_audit(action="accept"))
    assert decided == len(tasks), f"{decided} accepts recorded for {len(tasks)} decisions"
    problems = wf.store.check_audit().problems
    assert not problems, problems
    wf.store.close()
    # against the mean of the two in-process runs, taken before and after the HTTP ones
    seq = sum(r["decisions_per_s"] for r in results if "1 thread" in r["run"]) / 2
    for r in results:
        if "1 thread" not in r["run"]:
            r["x_sequential"] = round(r["decisions_per_s"] / seq, 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="timed decisions per run")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        help="also run the clients against this many server processes (one database)",
    )
    parser.add_argument(
        "--pg", default=os.environ.get("SHENPI_TEST_PG_URL", ""), help="PostgreSQL URL"
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    parser.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--group-commit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.group_commit)
        return
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()} "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load()}",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="shenpi-bench-http-") as tmp:
        log = Path(tmp) / "server.log"
        if args.only in (None, "sqlite"):
            sqlite = f"sqlite:///{tmp}/bench.db"
            results += run("sqlite", sqlite, args.n, args.clients, log, args.servers)
        if args.only in (None, "postgres") and args.pg:
            url, drop = make_pg_db(args.pg)
            try:
                results += run("postgres", url, args.n, args.clients, log, args.servers)
            finally:
                drop()
    print("# db | run | decisions/s | x sequential | p50 ms | p99 ms | steps/commit | load")
    for r in results:
        print(
            f"{r['db']} | {r['run']} | {r['decisions_per_s']} | {r.get('x_sequential', '')} | "
            f"{r['p50_ms']} | {r['p99_ms']} | {r.get('steps_per_commit', '')} | {r['load']}"
        )


if __name__ == "__main__":
    main()
