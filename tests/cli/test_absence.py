"""Org changes never stop the engine: the director (the Monday reception's `as:` user)
marked inactive in org.yaml, with and without a delegate, through the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.cli.helpers import PROCESSES, Shell

DEPLOYED = "2026-10-01T12:00:00+08:00"  # a Thursday
MONDAY = "2026-10-12T08:00:30+08:00"


def away(tmp_path: Path, *, delegate: bool = True) -> Path:
    """A copy of processes/ with chen.jun inactive (zhou.min standing in, unless not)."""
    folder = tmp_path / "procs"
    shutil.copytree(PROCESSES, folder)
    org = folder / "org.yaml"
    text = org.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("  chen.jun:"))
    new = line.replace(", delegate: zhou.min}", ", delegate: zhou.min, active: false}")
    if not delegate:
        new = new.replace(", delegate: zhou.min", "")
    assert new != line
    org.write_text(text.replace(line, new), encoding="utf-8")
    return folder


def test_the_engine_runs_on_with_the_director_away(db_url: str, tmp_path: Path) -> None:
    before = Shell(db_url)  # the shipped org: chen.jun present
    before.ok("deploy", now=DEPLOYED)
    before.ok("tick", now="2026-10-05T08:00:30+08:00")
    [started] = [i["id"] for i in before.js("instances --process director_reception")]
    sh = Shell(db_url, away(tmp_path))
    sh.ok("deploy", now=DEPLOYED)
    assert sh.js("tick", now="2026-10-05T09:00:00+08:00")["failed"] == 0
    # the instance opened while he was present is still shown and acted on
    assert sh.js(f"show {started}")["requester"] == "chen.jun"
    task = f"{started}-1"
    assert [t["id"] for t in sh.js("tasks --as zhou.min")] == [task]
    sh.refused(f"act {task} no_visitors --as chen.jun", "'chen.jun' is not active")
    sh.ok(f"act {task} no_visitors --as zhou.min", now="2026-10-05T10:00:00+08:00")
    # the next Monday's reception starts on his behalf, through zhou.min
    sh.ok("serve --once", now=MONDAY)
    [inst] = sh.js("instances --process director_reception --status active")
    [entry] = sh.js(f"audit --instance {inst['id']} --action start")
    assert (entry["actor"], entry["on_behalf_of"], inst["requester"]) == (
        "zhou.min",
        "chen.jun",
        "chen.jun",
    )
    assert entry["data"]["planned_at"] == "2026-10-12T08:00:00+08:00"
    assert [t["instance_id"] for t in sh.js("tasks --as zhou.min")] == [inst["id"]]
    assert sh.ok("audit --verify").code == 0


def test_without_a_delegate_the_run_fails_and_the_owner_is_told(
    db_url: str, tmp_path: Path
) -> None:
    sh = Shell(db_url, away(tmp_path, delegate=False))  # the shipped owner_role: the clerks
    sh.ok("deploy", now=DEPLOYED)
    res = sh.ok("tick -o json", now=MONDAY)
    assert res.json()["failed"] == 1  # and the exit status 0: the other schedules ran
    # the clerks (wang.fang, zhao.lei) hear of it
    assert "notify wang.fang: [director_reception] Scheduled run every_monday" in res.err
    assert "notify zhao.lei:" in res.err
    [entry] = sh.js("audit --action schedule_failed")
    assert entry["process"] == "director_reception"
    assert "'chen.jun' is not active and has no delegate" in entry["data"]["reason"]
    assert sh.js("instances --process director_reception") == []
    assert sh.js("tick", now="2026-10-12T09:00:00+08:00")["failed"] == 0  # recorded once


def test_an_org_yaml_error_points_at_org_yaml(db_url: str, tmp_path: Path) -> None:
    folder = away(tmp_path)
    org = folder / "org.yaml"
    text = org.read_text(encoding="utf-8")
    org.write_text(text.replace("delegate: zhou.min", "delegate: zhou.mn"), encoding="utf-8")
    line = next(i for i, x in enumerate(text.splitlines(), 1) if x.startswith("  chen.jun:"))
    sh = Shell(db_url, folder)
    for command in ("deploy", "tick", "tasks --as zhou.min", "serve --once"):
        sh.refused(command, f"org.yaml:{line}:", now=MONDAY)
        sh.refused(command, "unknown user 'zhou.mn'", now=MONDAY)
