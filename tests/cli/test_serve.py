"""Two real `run.py serve` processes share one database: every timer and slot fires once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from service.workflow import Workflow
from storage.store import Store
from tests.timeproc import WEEKLY, at

ROOT = Path(__file__).resolve().parents[2]


def test_two_serve_processes_fire_each_timer_once(db_url: str, weekly: Path) -> None:
    wf = Workflow(Store.open(db_url), weekly)
    wf.deploy(now=at("2026-09-27T09:00"))
    ids = [wf.start("chase", "wang.fang", {}, now=at("2026-09-30T10:00")).id for _ in range(10)]
    wf.store.close()
    assert "monday" in WEEKLY
    cmd = [
        sys.executable,
        str(ROOT / "run.py"),
        "--db",
        db_url,
        "--processes",
        str(weekly),
        "--now",
        "2026-10-12T09:00+08:00",
        "serve",
        "--no-http",
        "--every",
        "0.5",
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    servers = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        for _ in range(2)
    ]
    check = Store.open(db_url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            fired = [e for e in check.query_audit(actor="system") if e["instance_id"] in ids]
            if len(fired) >= 40:
                break
            time.sleep(0.2)
        time.sleep(1.5)  # let both servers tick a few more times: nothing more may fire
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        outputs = [server.communicate(timeout=30) for server in servers]
    for server, (_out, err) in zip(servers, outputs, strict=True):
        assert server.returncode == 0, err
        assert "Traceback" not in err, err
    for iid in ids:
        entries = [e for e in check.query_audit(instance_id=iid) if e["actor"] == "system"]
        assert sorted(e["action"] for e in entries) == [
            "deadline",
            "escalation",
            "escalation",
            "reminder",
        ], entries
    # deployed 27 Sep, first tick 12 Oct 09:00: the missed Monday 5 Oct coalesces into 12 Oct
    starts = check.query_audit(action="start", process="weekly")
    assert [e["data"]["planned_at"] for e in starts] == ["2026-10-12T08:00:00+08:00"], starts
    assert check.check_audit().problems == []
    check.close()
