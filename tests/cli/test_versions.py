"""Deployed versions, delegation and back-dated entries, through the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

from .helpers import PROCESSES, Shell

COMPLAINT = [
    "--set",
    "kind=complaint",
    "--set",
    "customer=a",
    "--set",
    "contact=b",
    "--set",
    "content=c",
]


def copy_processes(tmp_path: Path) -> Path:
    folder = tmp_path / "procs"
    folder.mkdir()
    for name in ("org.yaml", "complaint.yaml"):
        shutil.copy(PROCESSES / name, folder / name)
    return folder


def test_running_instances_keep_their_version(db_url: str, tmp_path: Path) -> None:
    folder = copy_processes(tmp_path)
    sh = Shell(db_url, folder)
    sh.ok("deploy")
    old = sh.js(["start", "complaint", "--as", "wang.fang", *COMPLAINT])
    path = folder / "complaint.yaml"
    text = path.read_text(encoding="utf-8")
    marker = "        not_accepted:\n"
    assert marker in text
    path.write_text(
        text.replace(marker, "        hand_over:\n          to: handling\n" + marker, 1),
        encoding="utf-8",
    )
    rows = sh.js("deploy")
    assert [(r["process"], r["version"], r["status"]) for r in rows] == [
        ("complaint", 2, "deployed")
    ]
    new = sh.js(["start", "complaint", "--as", "wang.fang", *COMPLAINT])
    assert (old["version"], new["version"]) == (1, 2)
    assert "hand_over" in new["tasks"][0]["actions"]
    assert "hand_over" not in old["tasks"][0]["actions"]
    sh.refused(f"act {old['tasks'][0]['id']} hand_over --as zhao.lei", "not an action of this task")
    assert sh.js(f"act {new['tasks'][0]['id']} hand_over --as zhao.lei")["state"] == "handling"
    deploys = sh.js("audit --action deploy")
    assert [e["data"]["version"] for e in deploys] == [1, 2]


def test_delegate_acts_on_behalf_of_an_inactive_director(db_url: str, tmp_path: Path) -> None:
    folder = copy_processes(tmp_path)
    org = folder / "org.yaml"
    text = org.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("  chen.jun:"))
    org.write_text(
        text.replace(line, line.replace("delegate: zhou.min", "delegate: zhou.min, active: false")),
        encoding="utf-8",
    )
    sh = Shell(db_url, folder)
    sh.ok("deploy")
    inst = sh.js(["start", "complaint", "--as", "wang.fang", *COMPLAINT])
    inst = sh.js(f"act {inst['tasks'][0]['id']} accept --as zhao.lei --set first_contact=ok")
    inst = sh.js(f"act {inst['tasks'][0]['id']} escalate --as li.qiang --set escalation_reason=r")
    director_task = inst["tasks"][0]["id"]
    assert [t["id"] for t in sh.js("tasks --as zhou.min")] == [director_task]
    sh.refused(f"act {director_task} resolve --as chen.jun --set resolution=x", "not active")
    sh.ok(f"act {director_task} resolve --as zhou.min --set resolution=已处理")
    entry = sh.js(f"audit --instance {inst['id']} --action resolve")[0]
    assert (entry["actor"], entry["on_behalf_of"]) == ("zhou.min", "chen.jun")
    assert sh.js(f"audit --actor chen.jun --instance {inst['id']}") == [entry]


def test_back_dated_entries_keep_the_real_recorded_time(db_url: str) -> None:
    sh = Shell(db_url)
    sh.ok("deploy")
    inst = sh.js(
        ["start", "complaint", "--as", "wang.fang", *COMPLAINT], now="2026-01-05T09:30+08:00"
    )
    [entry] = sh.js(f"audit --instance {inst['id']}")
    assert entry["at"] == "2026-01-05T09:30:00+08:00"
    assert entry["recorded_at"] > "2026-11-01"
    assert inst["created_at"] == "2026-01-05T09:30:00+08:00"
    window = sh.js("audit --since 2026-01-05T09:00+08:00 --until 2026-01-05T10:00+08:00")
    assert [e["seq"] for e in window] == [entry["seq"]]


def test_act_shows_the_instance_as_the_actor_may_see_it(db_url: str, tmp_path: Path) -> None:
    folder = copy_processes(tmp_path)
    path = folder / "complaint.yaml"
    text = path.read_text(encoding="utf-8")
    line = "confidential_to: [complaint_clerk, complaint_handler, service_director]"
    assert line in text
    path.write_text(text.replace(line, "confidential_to: [complaint_clerk]"), encoding="utf-8")
    sh = Shell(db_url, folder)
    sh.ok("deploy")
    inst = sh.js(["start", "complaint", "--as", "wang.fang", *COMPLAINT])
    assert inst["variables"]["customer"] == "a"  # the requester sees everything
    inst = sh.js(f"act {inst['tasks'][0]['id']} accept --as zhao.lei --set first_contact=ok")
    out = sh.ok(
        f"act {inst['tasks'][0]['id']} escalate --as li.qiang --set escalation_reason=r -o json"
    )
    shown = out.json()
    assert shown["variables"]["customer"] == "***"
    assert shown["history"][0]["data"]["input"]["customer"] == "***"
