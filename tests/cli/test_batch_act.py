"""``act T1 T2 ... ACTION``: one transaction per task, a row per task, exit 1 if any refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from .approvals import purchase_processes
from .helpers import Shell

AT = "2026-09-30T10:00:00+08:00"
LATER = "2026-09-30T11:00:00+08:00"


@pytest.fixture
def sh(db_url: str, tmp_path: Path) -> Shell:
    shell = Shell(db_url, purchase_processes(tmp_path / "processes"))
    shell.ok("deploy")
    return shell


def start(sh: Shell, item: str = "laptop") -> str:
    inst = sh.js(f"start purchase --as wang.fang --set item={item}", now=AT)
    return str(inst["tasks"][0]["id"])


def test_a_batch_with_one_bad_id_applies_the_others_and_exits_1(sh: Shell) -> None:
    a, b = start(sh), start(sh, "desk")
    res = sh(["act", a, "nope-1", b, "approve", "--as", "deng.ping", "-o", "json"], now=LATER)
    assert res.code == 1
    assert res.err.strip() == "error: 1 of 3 tasks refused"
    rows = res.json()
    assert [(r["task_id"], r["ok"]) for r in rows] == [(a, True), ("nope-1", False), (b, True)]
    assert rows[1]["error"] == "unknown task 'nope-1'; list open tasks with 'tasks'"
    assert rows[1]["state"] is None and rows[1]["instance_id"] is None
    for row, task in ((rows[0], a), (rows[2], b)):
        assert (row["state"], row["status"], row["error"]) == ("signoff", "active", None)
        assert row["instance_id"] == task.rpartition("-")[0]
        assert row["open_tasks"] == [f"{row['instance_id']}-2"]
        # really applied: the instance moved on, with the comment-less step in the log
        assert sh.js(f"show {row['instance_id']}")["state"] == "signoff"


def test_a_batch_where_all_succeed_exits_0_and_prints_a_row_per_task(sh: Shell) -> None:
    a, b = start(sh), start(sh, "desk")
    res = sh.ok(["act", a, b, "reject", "--as", "deng.ping", "--comment", "超预算"], now=LATER)
    lines = res.out.splitlines()
    assert lines[0].split() == [
        "TASK_ID", "RESULT", "INSTANCE_ID", "STATE", "STATUS", "OPEN_TASKS", "ERROR"
    ]  # fmt: skip
    assert [line.split()[:5] for line in lines[1:]] == [
        [t, "ok", t.rpartition("-")[0], "rejected", "completed"] for t in (a, b)
    ]
    assert res.err == ""
    for task in (a, b):
        trail = sh.js(f"audit --instance {task.rpartition('-')[0]} --action reject")
        assert [e["data"]["comment"] for e in trail] == ["超预算"]


def test_a_refusal_in_the_middle_is_reported_whole_and_changes_only_that_task(sh: Shell) -> None:
    """A task decided meanwhile is refused; the next one still goes through."""
    a, b = start(sh), start(sh, "desk")
    sh.ok(f"act {a} approve --as deng.ping", now=LATER)  # a is decided already
    res = sh(["act", a, b, "approve", "--as", "feng.xue"], now=LATER)
    assert res.code == 1
    refused = next(line for line in res.out.splitlines() if line.startswith(a))
    # the reason is printed whole, not cut at the table's 60 characters
    assert refused.endswith(
        f"action 'approve' on task {a}: the task is already done (approve by deng.ping); "
        "nothing was changed"
    )
    assert next(line for line in res.out.splitlines() if line.startswith(b)).split()[1] == "ok"
    decided = sh.js(f"show {a.rpartition('-')[0]}")["history"]
    assert [e["actor"] for e in decided if e["action"] == "approve"] == ["deng.ping"]


def test_a_bad_batch_as_a_whole_changes_nothing(sh: Shell) -> None:
    a, b = start(sh), start(sh, "desk")
    sh.refused(["act", a, b, a, "approve", "--as", "deng.ping"], f"{a} is named twice")
    sh.refused(["act", a, b, "approve", "--as", "nobody"], "unknown user 'nobody'")
    sh.refused(["act", a, b, "approve", "--as", "deng.ping", "--comment", "\x07"], "comment: ")
    for task in (a, b):
        shown = sh.js(f"show {task.rpartition('-')[0]}")
        assert shown["state"] == "review"
        assert [e["action"] for e in shown["history"]] == ["start"]
    assert sh("act approve --as deng.ping").code == 2  # no task id at all: usage


def test_one_task_keeps_the_single_form(sh: Shell) -> None:
    """``act TASK ACTION`` still prints the instance, and a refusal is one line, exit 1."""
    a = start(sh)
    inst = sh.js(f"act {a} approve --as deng.ping", now=LATER)
    assert inst["state"] == "signoff" and inst["tasks"][0]["roles"] == ["cfo", "general_manager"]
    sh.refused(f"act {a} approve --as deng.ping", "the task is already done")
    help_text = sh.ok("act --help").out
    assert "TASK_ID... ACTION" in help_text and "Exit status 0 when every task" in help_text
