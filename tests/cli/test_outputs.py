"""One look for every output: options anywhere, real titles, one zone, plain decimals."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import cli
from service.display import DisplayZoneFormatter, display_tz

from .helpers import Shell

ROOT = Path(__file__).resolve().parents[2]

SIGN = """\
process: sign
title: Sign
variables:
  amount: {type: money}
  rate: {type: decimal}
  note: {type: string}
start: {to: review, accept: [amount, rate, note]}
states:
  review:
    title: Review state
    deadline: {working_days: 3}
    task:
      title: 会签审核
      roles: [complaint_handler, service_director]
      mode: all
      countersign: approve
      actions:
        approve: {to: done}
  done: {final: true}
"""


@pytest.fixture
def signing(procs: Path) -> Path:
    (procs / "sign.yaml").write_text(SIGN, encoding="utf-8")
    return procs


@pytest.fixture
def zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Lets a test set SHENPI_TZ; the zone is read once per process, so reset around it."""
    display_tz.cache_clear()
    yield monkeypatch
    monkeypatch.delenv("SHENPI_TZ", raising=False)
    display_tz.cache_clear()


def run(args: list[str]) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


# --------------------------------------------------------------------------- global options


def test_global_options_work_after_the_subcommand(db_url: str, signing: Path) -> None:
    sh = Shell(db_url, signing)
    sh.ok("deploy", now="2026-09-29T09:00+08:00")
    inst = sh.js("start sign --as wang.fang --set amount=10", now="2026-09-30T10:00+08:00")
    after = ["--db", db_url, "--processes", str(signing), "--now", "2026-10-12T00:01+08:00"]
    code, out, err = run(["show", inst["id"], "-o", "json", *after])
    assert code == 0, err
    shown = json.loads(out)
    assert shown["id"] == inst["id"]
    assert shown["tasks"][0]["overdue"] is True  # --now after the subcommand was applied
    # -o before the subcommand, the rest after it
    code, out, err = run(["-o", "json", "tasks", "--process", "sign", *after])
    assert code == 0, err
    assert [t["instance_id"] for t in json.loads(out)] == [inst["id"]]
    # after the subcommand wins over before it
    code, out, err = run(["--now", "2026-09-30T11:00+08:00", "tasks", "-o", "json", *after])
    assert code == 0, err
    assert json.loads(out)[0]["overdue"] is True
    # a bad value after the subcommand is a usage error, as before it
    code, _out, err = run(["tasks", *after[:4], "--now", "yesterday"])
    assert code == 2 and "--now" in err


def test_output_before_a_command_without_output_is_a_usage_error(signing: Path) -> None:
    code, _out, err = run(["--processes", str(signing), "-o", "json", "graph", "sign"])
    assert code == 2 and "graph has no -o/--output" in err
    code, out, err = run(["graph", "sign", "--processes", str(signing)])
    assert code == 0, err
    assert out.startswith("stateDiagram-v2")


def test_help_lists_the_global_options_on_subcommands() -> None:
    code, out, _err = run(["show", "--help"])
    assert code == 0
    for option in ("--db", "--processes", "--now", "--output"):
        assert option in out


# --------------------------------------------------------------------------- titles


def test_tasks_json_carries_the_task_title(db_url: str, signing: Path) -> None:
    sh = Shell(db_url, signing)
    sh.ok("deploy", now="2026-09-29T09:00+08:00")
    sh.ok("start sign --as wang.fang --set amount=10", now="2026-09-30T10:00+08:00")
    sh.ok("start chase --as wang.fang", now="2026-09-30T10:00+08:00")
    titles = {t["process"]: t.get("title", "omitted") for t in sh.js("tasks --all")}
    assert titles == {"sign": "会签审核", "chase": "omitted"}  # chase's state has no title


# --------------------------------------------------------------------------- one zone


def _times(value: object) -> list[str]:
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")
    if isinstance(value, dict):
        return [t for v in value.values() for t in _times(v)]
    if isinstance(value, list):
        return [t for v in value for t in _times(v)]
    return [value] if isinstance(value, str) and pattern.match(value) else []


@pytest.mark.parametrize(("tz", "offset"), [(None, "+08:00"), ("UTC", "+00:00")])
def test_every_time_in_show_is_in_the_display_zone(
    db_url: str, signing: Path, zone: pytest.MonkeyPatch, tz: str | None, offset: str
) -> None:
    if tz:
        zone.setenv("SHENPI_TZ", tz)
    sh = Shell(db_url, signing)
    sh.ok("deploy", now="2026-09-29T09:00+08:00")
    inst = sh.js("start sign --as wang.fang --set amount=10", now="2026-09-30T10:00+08:00")
    task = inst["tasks"][0]["id"]
    sh.ok(f"act {task} approve --as li.qiang")  # the real clock, which runs in UTC
    shown = sh.js(f"show {inst['id']}", now="2026-09-30T12:00+08:00")
    [signoff] = shown["tasks"][0]["signoffs"]
    assert (
        datetime.fromisoformat(signoff["at"]).utcoffset() == datetime.now(display_tz()).utcoffset()
    )
    times = _times(shown)
    assert len(times) >= 8  # created, updated, task times, signoff, history, timers
    assert all(t.endswith(offset) for t in times), times
    listed = sh.js("tasks --all")[0]
    assert listed["signoffs"][0]["at"].endswith(offset)


def test_serve_log_lines_are_stamped_in_the_display_zone(db_url: str, procs: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TZ="UTC", SHENPI_TZ="Asia/Shanghai")
    cmd = [sys.executable, str(ROOT / "run.py"), "--db", db_url, "--processes", str(procs)]
    server = subprocess.Popen(
        [*cmd, "serve", "--no-http", "--every", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        assert server.stderr is not None
        seen: list[str] = []
        while time.monotonic() < deadline and not any("Running job" in s for s in seen):
            line = server.stderr.readline()
            if not line:
                break
            seen.append(line)
    finally:
        server.send_signal(signal.SIGTERM)
        _out, rest = server.communicate(timeout=30)
    lines = [s for s in [*seen, *rest.splitlines()] if re.match(r"^\d{4}-\d\d-\d\d", s)]
    assert any("apscheduler" in s for s in lines), seen
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00 ")
    assert all(stamp.match(s) for s in lines), lines
    running = [s for s in lines if "next run at" in s]
    assert running and all("CST" in s for s in running), running


def test_log_formatter_uses_the_display_zone(zone: pytest.MonkeyPatch) -> None:
    zone.setenv("SHENPI_TZ", "America/New_York")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    record.created = datetime(2026, 7, 1, 12, tzinfo=UTC).timestamp()
    line = DisplayZoneFormatter("%(asctime)s %(message)s").format(record)
    assert line == "2026-07-01T08:00:00.000-04:00 hello"


def test_a_bad_display_zone_is_one_line(zone: pytest.MonkeyPatch) -> None:
    zone.setenv("SHENPI_TZ", "Mars/Olympus")
    code, _out, err = run(["users"])
    assert code == 1
    assert err.strip().splitlines() == [
        "error: SHENPI_TZ='Mars/Olympus' is not a time zone; use an IANA name such as "
        "'Asia/Shanghai'"
    ]


# --------------------------------------------------------------------------- decimals


def test_decimals_print_in_plain_notation(db_url: str, signing: Path) -> None:
    sh = Shell(db_url, signing)
    sh.ok("deploy", now="2026-09-29T09:00+08:00")
    inst = sh.js(
        ["start", "sign", "--as", "wang.fang", "--set", "amount=1E+3", "--set", "rate=-0.00"]
        + ["--set", "note=1E+3"],
        now="2026-09-30T10:00+08:00",
    )
    assert inst["variables"] == {"amount": "1000", "rate": "0.00", "note": "1E+3"}
    kept = sh.js(
        ["start", "sign", "--as", "wang.fang", "--set", "amount=1000.00", "--set", "rate=-0"],
        now="2026-09-30T10:00+08:00",
    )
    assert kept["variables"]["amount"] == "1000.00" and kept["variables"]["rate"] == "0"
    rows = {r["id"]: r for r in sh.js("instances --process sign")}
    assert rows[inst["id"]]["variables"]["amount"] == "1000"
    text = sh.ok(f"show {inst['id']}").out
    assert "amount: 1000\n" in text and "rate: 0.00\n" in text
    assert "E+" not in text.replace("note: 1E+3", "")
