"""Deliveries per second from the outbox to a local webhook sink, on SQLite and PostgreSQL.

N instances of the small complaint-clerk process each queue one task_assigned notice for
two clerks; one dispatcher expands them into 2N deliveries (one per clerk) and sends each
as a signed Standard Webhooks POST to an HTTP server on loopback, marking every delivery
in its own committed transaction. Prints the time to expand and to send, and
deliveries/s end to end.

    python bench/bench_notices.py --n 1000
    python bench/bench_notices.py --n 1000 --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

Not a test: figures go to docs/benchmarks.md with the machine and the date.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from notifiers.config import load_channels_text  # noqa: E402
from notifiers.outbox import Dispatcher, Outlet, expand  # noqa: E402
from service.workflow import Workflow  # noqa: E402
from storage.store import Store  # noqa: E402
from tests.notifiers.channels.sinks import HttpSink, Reply  # noqa: E402
from tests.timeproc import make_processes  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"bench-secret-bench-secre").decode()
T0 = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)


def run(url: str, n: int, folder: Path) -> dict[str, float]:
    procs = make_processes(folder / f"p-{uuid.uuid4().hex[:6]}")
    wf = Workflow(Store.open(url), procs)
    wf.deploy(now=T0)
    for i in range(n):
        wf.start("chase", "wang.fang", {}, now=T0 + timedelta(seconds=i))
    now = T0 + timedelta(days=1)
    with HttpSink() as sink:
        sink.default = Reply(204, b"")
        text = (
            f"channels:\n  erp: {{type: webhook, url: '{sink.url}/hook', secrets: ['${{HOOK}}']}}\n"
        )
        outlet = Outlet.of(load_channels_text(text, "channels.yaml", {"HOOK": SECRET}))
        d = Dispatcher(wf.store, wf.org, outlet)
        began = time.perf_counter()
        expanded = 0
        while batch := wf.store.claim_notices(now, limit=500):
            for notice in batch:
                expanded += expand(wf.store, wf.org, outlet, notice, now)
        mid = time.perf_counter()
        sent = 0
        while report := d.run(now, limit=500):
            if not report.handled:
                break
            sent += report.sent
        done = time.perf_counter()
        received = len(sink.requests)
    wf.store.close()
    assert sent == expanded == received == 2 * n, (sent, expanded, received)
    return {
        "deliveries": sent,
        "expand_s": mid - began,
        "send_s": done - mid,
        "per_s": sent / (done - began),
        "send_per_s": sent / (done - mid),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="instances (2 deliveries each)")
    ap.add_argument("--pg", help="also run on this PostgreSQL URL (a fresh schema is used)")
    args = ap.parse_args()
    print(f"{platform.platform()}, {os.cpu_count()} cores, python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        urls = [("SQLite", f"sqlite:///{tmp}/bench.db")]
        if args.pg:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            import sqlalchemy as sa

            admin = sa.create_engine(args.pg)
            with admin.begin() as conn:
                conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
            sep = "&" if "?" in args.pg else "?"
            urls.append(("PostgreSQL", f"{args.pg}{sep}options=-csearch_path%3D{schema}"))
        try:
            for name, url in urls:
                r = run(url, args.n, Path(tmp))
                print(
                    f"{name}: {r['deliveries']:.0f} deliveries, expand {r['expand_s']:.2f} s, "
                    f"send {r['send_s']:.2f} s ({r['send_per_s']:.0f}/s), "
                    f"end to end {r['per_s']:.0f} deliveries/s"
                )
        finally:
            if args.pg:
                with admin.begin() as conn:
                    conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
                admin.dispose()


if __name__ == "__main__":
    main()
