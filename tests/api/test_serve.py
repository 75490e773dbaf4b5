"""``run.py serve`` as a real process: HTTP and the scheduler on one port, Ctrl-C stops both."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.api.conftest import ROOT, processes


def _serve(db: str, procs: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(ROOT / "run.py"), "--db", db, "--processes", str(procs), "serve"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )


def test_serve_answers_http_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    procs = processes(tmp_path / "processes")
    db = f"sqlite:///{tmp_path / 'shenpi.db'}"
    server = _serve(db, procs, "--port", "0", "--every", "0.5")
    try:
        assert server.stderr is not None
        deadline = time.monotonic() + 60
        port = None
        seen: list[str] = []
        while port is None and time.monotonic() < deadline:
            line = server.stderr.readline()
            assert line, "".join(seen)
            seen.append(line)
            found = re.search(r"HTTP API on http://127\.0\.0\.1:(\d+)/v1", line)
            port = int(found.group(1)) if found else None
        assert port is not None, seen
        for _ in range(200):
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert ready.status_code == 200, ready.text
        res = httpx.get(f"http://127.0.0.1:{port}/v1/tasks", timeout=5)
        assert res.status_code == 401
    finally:
        server.send_signal(signal.SIGINT)
        _out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "Traceback" not in err and "stopped" in err
    assert "tick" in err or "scheduler" in err  # the scheduler ran beside the server


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    procs = processes(tmp_path / "processes")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        server = _serve(f"sqlite:///{tmp_path / 'x.db'}", procs, "--port", str(port))
        _out, err = server.communicate(timeout=60)
    finally:
        taken.close()
    assert server.returncode == 1
    assert err.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
