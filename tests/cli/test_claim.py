"""`claim` and `unclaim` through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.people import START, make_people, outbox, refused_unchanged

from .helpers import Shell


@pytest.fixture
def sh(db_url: str, tmp_path: Path) -> Shell:
    shell = Shell(db_url, make_people(tmp_path / "processes"))
    shell.ok("deploy", now=START)
    return shell


def test_claim_takes_a_role_task_until_released(sh: Shell, db_url: str) -> None:
    inst = sh.js("start purchase --as liu.yang --set amount=1200", now=START)
    task = inst["tasks"][0]["id"]
    assert [t["id"] for t in sh.js("tasks --as he.jing")] == [task]
    assert sh.ok(f"claim {task} --as xu.ming", now=START).out.strip() == (
        f"claimed: task {task} by xu.ming"
    )
    assert sh.js("tasks --as he.jing") == []
    [mine] = sh.js("tasks --as xu.ming")
    assert mine["claimed_by"] == "xu.ming"
    refused_unchanged(
        sh, db_url, inst["id"], f"claim {task} --as he.jing", "xu.ming has claimed it"
    )
    refused_unchanged(
        sh, db_url, inst["id"], f"unclaim {task} --as he.jing", "xu.ming claimed it; only they"
    )
    sh.refused(f"act {task} approve --as he.jing", "xu.ming has claimed this task", now=START)
    told = len(outbox(db_url))
    sh.ok(f"unclaim {task} --as xu.ming", now=START)
    assert [t["id"] for t in sh.js("tasks --as he.jing")] == [task]
    event, recipients, _ = outbox(db_url)[told]
    assert (event, recipients) == ("task_assigned", ["role:business_manager"])
    sh.ok(f"act {task} approve --as he.jing", now=START)


def test_claim_needs_the_right_to_act(sh: Shell, db_url: str) -> None:
    inst = sh.js("start purchase --as liu.yang --set amount=1200", now=START)
    task = inst["tasks"][0]["id"]
    refused_unchanged(
        sh, db_url, inst["id"], f"claim {task} --as deng.ping", "needs role business_manager"
    )
    refused_unchanged(sh, db_url, inst["id"], f"unclaim {task} --as xu.ming", "nobody has claimed")
