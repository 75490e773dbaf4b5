"""run.py as a real process whose reader stops early, as `run.py ... | head -1` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import PROCESSES

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], db: str, stdout: int) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--processes", str(PROCESSES), "--db", db, *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=60,
    )


@pytest.mark.parametrize("inside_refusals", [True, False], ids=["show", "schema"])
def test_a_reader_that_stops_early_gets_no_error_message(
    tmp_path: Path, inside_refusals: bool
) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    command = ["schema"]
    if inside_refusals:
        assert run(["deploy"], db, subprocess.DEVNULL).returncode == 0
        sets = [f"--set={kv}" for kv in ("kind=complaint", "customer=c", "contact=1",
                                         "content=c", "subject=s")]  # fmt: skip
        started = run(["start", "complaint", "--as", "wang.fang", *sets, "-o", "json"], db, -1)
        command = ["show", json.loads(started.stdout)["id"]]
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        proc = run(command, db, write)
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (1, b"")
