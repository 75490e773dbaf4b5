"""The list queries at a small and a large number of stored instances, with their plans.

Fills a fresh database with N instances of the shipped processes (bulk inserts, not
driven through the engine: only the rows the list queries read matter here), then times
one page (100 rows, the CLI default) of each list query, the first page and the page
after it, and prints the plan of every statement it ran (SQLite: EXPLAIN QUERY PLAN,
PostgreSQL: EXPLAIN).

    python bench/bench_queries.py --sizes 1000,100000
    python bench/bench_queries.py --sizes 1000,100000 --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

Not a test: figures go to docs/benchmarks.md with the machine and the date.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.workflow import Workflow  # noqa: E402
from storage.store import Store  # noqa: E402
from storage.tables import audit_log, instances, task_roles, tasks  # noqa: E402
from tests.sqlplans import captured, plans  # noqa: E402

PROCESSES = Path(__file__).resolve().parents[1] / "processes"
NOW = datetime(2026, 10, 15, 2, 0, tzinfo=UTC)
INBOX_USER = "deng.ping"  # finance: a role of several processes, one of them four-eyes
AUDIT_ACTOR = "zhao.lei"
PAGE = 100
RUNS = 21


def human_states(wf: Workflow) -> list[tuple[str, int, str, tuple[str, ...], str, list[str]]]:
    """(process, version, state, roles, mode, actions) of every state with a fixed role."""
    out = []
    for row in wf.store.list_definitions():
        proc = wf.process(row["process"], row["version"])
        for name, st in proc.spec.states.items():
            if st.task is None:
                continue
            roles = st.task.roles or ((st.task.role,) if st.task.role else ())
            if roles:
                out.append(
                    (
                        row["process"],
                        row["version"],
                        name,
                        tuple(roles),
                        st.task.mode.value,
                        list(st.task.actions),
                    )
                )
    return out


def fill(wf: Workflow, n: int, seed: int = 7) -> None:
    """n instances: 70% active with one open task, due from 30 days ago to 30 days ahead;
    3 audit entries each. 3% are requested by the inbox user (four-eyes drops some)."""
    rnd = random.Random(seed)
    states = human_states(wf)
    users = sorted(wf.org.users)
    batch = 5000
    for lo in range(0, n, batch):
        inst, tsk, roles, aud = [], [], [], []
        for _ in range(lo, min(n, lo + batch)):
            process, version, state, rs, mode, actions = rnd.choice(states)
            iid = uuid.uuid4().hex[:12]
            created = NOW - timedelta(days=rnd.uniform(0, 60))
            active = rnd.random() < 0.7
            requester = INBOX_USER if rnd.random() < 0.03 else rnd.choice(users)
            inst.append(
                {
                    "id": iid,
                    "process": process,
                    "version": version,
                    "state": state if active else "closed",
                    "status": "active" if active else "completed",
                    "outcome": None,
                    "variables": {},
                    "requester": requester,
                    "task_seq": 1,
                    "approvers": [],
                    "meta": {},
                    "created_at": created,
                    "updated_at": created,
                    "row_version": 1,
                }
            )
            due = NOW + timedelta(days=rnd.uniform(-30, 30)) if rnd.random() < 0.9 else None
            tsk.append(
                {
                    "id": f"{iid}-1",
                    "instance_id": iid,
                    "process": process,
                    "name": state,
                    "state": state,
                    "roles": list(rs),
                    "mode": mode,
                    "actions": actions,
                    "status": "open" if active else "done",
                    "created_at": created,
                    "due_at": due,
                    "closed_at": None if active else created,
                    "decision": None if active else actions[0],
                    "decided_by": None if active else rnd.choice(users),
                    "signoffs": [],
                }
            )
            if active:
                pending = rs if mode == "all" else rs[:1]
                roles += [{"task_id": f"{iid}-1", "role": r, "due_at": due} for r in pending]
            for k in range(3):
                actor = rnd.choice(users)
                aud.append(
                    {
                        "at": created + timedelta(minutes=k),
                        "recorded_at": created + timedelta(minutes=k),
                        "actor": actor,
                        "on_behalf_of": rnd.choice(users) if rnd.random() < 0.05 else None,
                        "process": process,
                        "instance_id": iid,
                        "task_id": f"{iid}-1" if k else None,  # steps on the task
                        "action": ("start", "accept", "close")[k],
                        "from_state": None,
                        "to_state": state,
                        "data": {},
                        "chain_key": iid,
                        "prev_hash": "0" * 64,
                        "hash": "0" * 64,
                    }
                )
        with wf.store.engine.begin() as conn:
            conn.execute(sa.insert(instances), inst)
            conn.execute(sa.insert(tasks), tsk)
            conn.execute(sa.insert(task_roles), roles)
            conn.execute(sa.insert(audit_log), aud)


def timed(run: Callable[[], Any]) -> float:
    run()  # warm: compiled statements, definitions
    samples = []
    for _ in range(RUNS):
        t = time.perf_counter()
        run()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def queries(wf: Workflow) -> dict[str, Callable[[str | None], Any]]:
    state = "review"  # the most common fixed-role state name among the shipped processes
    return {
        f"tasks --as {INBOX_USER}": lambda after: wf.tasks(
            user=INBOX_USER, limit=PAGE, after=after
        ),
        "tasks --overdue": lambda after: wf.tasks(overdue_at=NOW, limit=PAGE, after=after),
        f"instances --state {state}": lambda after: wf.store.instance_page(
            state=state, limit=PAGE, after=after
        ),
        f"audit --actor {AUDIT_ACTOR}": lambda after: wf.store.audit_page(
            actor=AUDIT_ACTOR, limit=PAGE, after=after
        ),
        f"instances --requester {INBOX_USER}": lambda after: wf.store.instance_page(
            requester=INBOX_USER, limit=PAGE, after=after
        ),
        f"tasks --done-by {AUDIT_ACTOR}": lambda after: wf.store.decision_page(
            AUDIT_ACTOR, limit=PAGE, after=after
        ),
    }


def bench(url: str, size: int, show_plans: bool) -> list[dict[str, Any]]:
    store = Store.open(url)
    wf = Workflow(store, PROCESSES, clock=lambda: NOW)
    wf.deploy(now=NOW)
    t = time.perf_counter()
    fill(wf, size)
    fill_s = time.perf_counter() - t
    if store.dialect == "postgresql":
        with store.engine.begin() as conn:  # this machine's server runs without autovacuum
            conn.exec_driver_sql("ANALYZE")
    results = []
    for name, query in queries(wf).items():
        first = query(None)
        row = {
            "db": store.dialect,
            "size": size,
            "query": name,
            "rows": len(first.items),
            "first_ms": timed(lambda q=query: q(None)),
            "next_ms": timed(lambda q=query, c=first.next: q(c)) if first.next else None,
        }
        results.append(row)
        if show_plans:
            for plan in plans(store, captured(store, lambda q=query, c=first.next: q(c))):
                print(f"  plan [{store.dialect} {name}]: {plan}")
    print(f"# filled {size} instances in {fill_s:.1f} s", file=sys.stderr)
    store.close()
    return results


def pg_schema_url(base: str) -> tuple[str, Callable[[], None]]:
    """A fresh schema on the server (search_path), dropped afterwards."""
    import psycopg

    from storage.db import normalize_url

    url = normalize_url(base)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    parsed = sa.make_url(url)
    args = {"host": parsed.host, "port": parsed.port, "user": parsed.username}
    args = {k: v for k, v in args.items() if v is not None}
    with psycopg.connect(autocommit=True, dbname=parsed.database, **args) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(autocommit=True, dbname=parsed.database, **args) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}", drop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,100000")
    ap.add_argument("--pg", help="also run on this PostgreSQL URL (in a scratch schema)")
    ap.add_argument("--no-plans", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            results += bench(f"sqlite:///{tmp}/q{size}.db", size, not args.no_plans)
    if args.pg:
        for size in sizes:
            url, drop = pg_schema_url(args.pg)
            try:
                results += bench(url, size, not args.no_plans)
            finally:
                drop()
    print("| database | stored instances | query | rows | first page | next page |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        nxt = f"{r['next_ms']:.2f} ms" if r["next_ms"] is not None else "-"
        print(
            f"| {r['db']} | {r['size']:,} | `{r['query']}` | {r['rows']} | "
            f"{r['first_ms']:.2f} ms | {nxt} |"
        )


if __name__ == "__main__":
    main()
