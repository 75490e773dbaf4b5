"""The monthly report's time at about 1M audit entries, with the plans of its reads.

Fills a fresh database with a year of instances (bulk inserts, not driven through the
engine: only the rows the reports read matter): each instance has two decided tasks and
twelve audit entries, some of them escalations, so 1M audit entries are about 83k
instances. Then times ``report summary`` for one month (``build_report``, what the CLI
calls) and the owner-defined monthly service report (processes/reports/monthly_service.yaml
over all the bench's processes: by kind, by handler, on time, late, extended, handling
time in working days; what ``tick`` delivers on the 1st), and prints the plan of every
statement each ran.

    python bench/bench_reports.py --audit 1000000
    python bench/bench_reports.py --audit 1000000 --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

Not a test: figures go to docs/benchmarks.md with the machine and the date.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_queries import pg_schema_url  # noqa: E402
from engine.org import Org, load_org  # noqa: E402
from engine.process import compile_process  # noqa: E402
from engine.reportspec import load_report  # noqa: E402
from engine.yamlsafe import load_file  # noqa: E402
from service.ownerreports import OwnerReport, run_owner_report  # noqa: E402
from service.reports import build_report  # noqa: E402
from storage.store import Store  # noqa: E402
from storage.tables import audit_log, instances, tasks  # noqa: E402
from tests.sqlplans import captured, plans  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
YEAR = datetime(2026, 1, 1, tzinfo=UTC)
MONTH = (datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
NOW = datetime(2026, 12, 31, tzinfo=UTC)
PER_INSTANCE = 12
PROCESSES = [f"p{i}" for i in range(12)]
STATES = ["review", "approve", "check"]
USERS = [f"u{i:03d}" for i in range(200)]


def sla(rnd: random.Random, created: datetime, done: bool) -> dict[str, object]:
    """An instance deadline clock as the engine stores it: met or not, some extended."""
    due = created + timedelta(days=3)
    clock: dict[str, object] = {
        "started_at": created.isoformat(), "counted_from": created.isoformat(),
        "amount": "3", "unit": "working_days", "due_at": due.isoformat(), "generation": 0,
        "extensions": [{"amount": "2", "unit": "working_days", "at": created.isoformat(),
                        "by": "u000"}] if rnd.random() < 0.05 else [],
    }  # fmt: skip
    if done:
        stopped = created + timedelta(hours=rnd.expovariate(1 / 60))
        clock |= {"stopped_at": stopped.isoformat(), "met": stopped <= due}
    return clock


def fill(store: Store, audit_rows: int, seed: int = 11) -> int:
    rnd = random.Random(seed)
    n = audit_rows // PER_INSTANCE
    batch = 4000
    for lo in range(0, n, batch):
        inst, tsk, aud = [], [], []
        for i in range(lo, min(n, lo + batch)):
            iid = f"r{i:07d}"
            process = rnd.choice(PROCESSES)
            created = YEAR + timedelta(seconds=rnd.uniform(0, 360 * 86400))
            done = rnd.random() < 0.95
            inst.append(
                {
                    "id": iid, "process": process, "version": 1,
                    "state": "done" if done else "review",
                    "status": "completed" if done else "active",
                    "outcome": rnd.choice(("approved", "rejected")) if done else None,
                    "variables": {"kind": rnd.choice(("complaint", "report"))},
                    "requester": rnd.choice(USERS), "task_seq": 2,
                    "approvers": [], "meta": {"sla": sla(rnd, created, done)},
                    "created_at": created,
                    "updated_at": created, "row_version": 2,
                }
            )  # fmt: skip
            at = created
            for k, state in enumerate(STATES[:2]):
                opened = at
                at = opened + timedelta(hours=rnd.expovariate(1 / 20))
                closed = done or k == 0
                tsk.append(
                    {
                        "id": f"{iid}-{k + 1}", "instance_id": iid, "process": process,
                        "name": state, "state": state, "roles": ["clerk"], "mode": "any",
                        "actions": ["approve"], "status": "done" if closed else "open",
                        "created_at": opened, "due_at": opened + timedelta(hours=24),
                        "closed_at": at if closed else None,
                        "decision": "approve" if closed else None,
                        "decided_by": rnd.choice(USERS) if closed else None,
                        "signoffs": [], "meta": {},
                    }
                )  # fmt: skip
            for k in range(PER_INSTANCE):
                action = "escalation" if k == 5 and rnd.random() < 0.2 else f"step{k}"
                action = "resolve" if k == 4 and done else action
                aud.append(
                    {
                        "at": created + timedelta(minutes=10 * k), "recorded_at": created,
                        "actor": rnd.choice(USERS), "on_behalf_of": None, "process": process,
                        "instance_id": iid, "task_id": None, "action": action,
                        "from_state": "review", "to_state": "review",
                        "data": {"level": 1} if action == "escalation" else {},
                        "chain_key": iid, "prev_hash": "0" * 64, "hash": "0" * 64,
                    }
                )  # fmt: skip
        with store.engine.begin() as conn:
            conn.execute(sa.insert(instances), inst)
            conn.execute(sa.insert(tasks), tsk)
            conn.execute(sa.insert(audit_log), aud)
    return n


def bench(url: str, audit: int, runs: int) -> list[dict[str, object]]:
    store = Store.open(url)
    t = time.perf_counter()
    n = fill(store, audit)
    fill_s = time.perf_counter() - t
    if store.dialect == "postgresql":
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")

    def run() -> object:
        return build_report(store, "summary", *MONTH, NOW)

    owner = owner_report()
    complaint = compile_process(load_file(ROOT / "processes" / "complaint.yaml"), org())
    procs = {p: complaint for p in PROCESSES}  # the calendar and states of a complaint

    def run_owner() -> object:
        return run_owner_report(store, owner, procs, *MONTH, NOW, UTC)

    out = []
    for name, fn in (("summary", run), ("monthly_service", run_owner)):
        result = fn()
        samples = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        for plan in plans(store, captured(store, fn)):
            print(f"  plan [{store.dialect}, {name}]: {plan[:400]}")  # IN lists are long
        rows = sum(len(s.rows) for s in result.sections)  # type: ignore[attr-defined]
        out.append(
            {
                "db": store.dialect,
                "report": name,
                "instances": n,
                "audit": audit,
                "median_s": statistics.median(samples),
                "max_s": max(samples),
                "peak_mib": peak / 2**20,
                "rows": rows,
            }
        )
    store.close()
    print(f"# filled {n} instances, {audit} audit entries in {fill_s:.0f} s", file=sys.stderr)
    return out


def org() -> Org:
    return load_org(load_file(ROOT / "processes" / "org.yaml"))


def owner_report() -> OwnerReport:
    """The shipped monthly service report, over the bench's processes."""
    path = ROOT / "processes" / "reports" / "monthly_service.yaml"
    spec = load_report(load_file(path))
    return OwnerReport(spec.model_copy(update={"processes": tuple(PROCESSES)}), str(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--audit", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pg", help="also run on this PostgreSQL URL (in a scratch schema)")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.extend(bench(f"sqlite:///{tmp}/r.db", args.audit, args.runs))
    if args.pg:
        url, drop = pg_schema_url(args.pg)
        try:
            results.extend(bench(url, args.audit, args.runs))
        finally:
            drop()
    print(
        "| database | report | instances | audit entries | one month (median) | max "
        "| peak Python memory | report rows |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['db']} | {r['report']} | {r['instances']:,} | {r['audit']:,} | "
            f"{r['median_s']:.2f} s | "
            f"{r['max_s']:.2f} s | {r['peak_mib']:.1f} MiB | {r['rows']} |"
        )


if __name__ == "__main__":
    main()
