"""Two dispatchers in two OS processes drain one PostgreSQL outbox: nothing doubled, nothing lost.

Threads in one interpreter share the GIL and a connection pool's habits; separate processes
are what production runs (two ``serve`` replicas), so the claims must hold across them.
The sink is a real HTTP server that verifies every Standard Webhooks signature and records
every delivery id; a third of the ids are refused with HTTP 500 the first time, so the
retries are drained concurrently too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from service.workflow import Workflow
from storage.store import Store
from tests.notifiers.channels.sinks import HttpSink, Reply, Request
from tests.notifiers.test_delivery import SECRET
from tests.timeproc import at

ROOT = Path(__file__).resolve().parents[2]
T0 = at("2026-09-30T10:01")
INSTANCES = 25  # two deliveries each (two complaint clerks): 50 rows


class CountingReceiver:
    """Verifies each request; refuses some ids once with 500; counts what it accepted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.bad_signatures = 0

    @staticmethod
    def flaky(delivery_id: str) -> bool:
        return int(delivery_id, 16) % 3 == 0

    def __call__(self, request: Request) -> Reply:
        headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
        try:
            Webhook(SECRET).verify(request.body, headers)
        except WebhookVerificationError:
            with self.lock:
                self.bad_signatures += 1
            return Reply(401, {"error": "bad signature"})
        ident = headers["webhook-id"]
        with self.lock:
            if self.flaky(ident) and not self.refused[ident]:
                self.refused[ident] += 1
                return Reply(500, {"error": "busy"}, delay=0.005)
            self.accepted[ident] += 1
        return Reply(204, b"", delay=0.005)  # a little latency, so the two interleave


@pytest.fixture
def receiver() -> Iterator[tuple[HttpSink, CountingReceiver]]:
    with HttpSink() as sink:
        rec = CountingReceiver()
        sink.default = rec
        yield sink, rec


def spawn(args: list[str]) -> subprocess.Popen[str]:
    env = dict(os.environ, HOOK=SECRET, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.notifiers.dispatch_worker", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def expect(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(prefix), f"worker said {line!r}, expected {prefix!r}"
    return line


def test_two_dispatcher_processes_on_postgresql_send_each_delivery_once(
    pg_url: str, procs: Path, tmp_path: Path, receiver: tuple[HttpSink, CountingReceiver]
) -> None:
    sink, rec = receiver
    wf = Workflow(Store.open(pg_url), procs)
    wf.deploy(now=at("2026-09-29T09:00"))
    for _ in range(INSTANCES):
        wf.start("chase", "wang.fang", {}, now=at("2026-09-30T10:00"))
    channels = tmp_path / "channels.yaml"
    channels.write_text(
        "channels:\n"
        f"  hook: {{type: webhook, url: '{sink.url}/hook', secrets: ['${{HOOK}}'], timeout: 5}}\n",
        encoding="utf-8",
    )
    # round 1 sends and fails a third; round 2, past every backoff, sends the retries
    rounds = [T0.isoformat(), (T0 + timedelta(hours=1)).isoformat()]
    workers = [spawn([pg_url, str(procs), str(channels), *rounds]) for _ in range(2)]
    sent = [0, 0]
    try:
        for moment in rounds:
            for w in workers:
                expect(w, f"ready {moment}")
            for w in workers:  # both go at once
                assert w.stdin is not None
                w.stdin.write("go\n")
                w.stdin.flush()
            for i, w in enumerate(workers):
                sent[i] += int(expect(w, f"done {moment}").split()[-1])
        for w in workers:
            assert w.wait(timeout=60) == 0
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    rows = wf.store.deliveries.list()
    wf.store.close()
    assert rec.bad_signatures == 0
    assert len(rows) == 2 * INSTANCES
    assert Counter(r["status"] for r in rows) == Counter(sent=2 * INSTANCES)  # none lost
    assert set(rec.accepted) == {r["delivery_id"] for r in rows}
    assert set(rec.accepted.values()) == {1}  # none accepted twice
    assert rec.refused and all(rec.accepted[i] == 1 for i in rec.refused)  # retried once
    assert sum(sent) == 2 * INSTANCES
    assert min(sent) > 0, f"one dispatcher did all the work: {sent}; the test proves nothing"
    # every request reached the sink exactly as often as the receiver counted it
    assert len(sink.requests) == sum(rec.accepted.values()) + sum(rec.refused.values())
