"""`remind` (催办) through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.people import START, make_people, outbox, refused_unchanged

from .helpers import Shell

LATER = "2026-09-30T10:23:00+08:00"
HOUR_ON = "2026-09-30T11:00:00+08:00"


@pytest.fixture
def sh(db_url: str, tmp_path: Path) -> Shell:
    shell = Shell(db_url, make_people(tmp_path / "processes"))
    shell.ok("deploy", now=START)
    return shell


def test_remind_at_most_once_an_hour(sh: Shell, db_url: str) -> None:
    inst = sh.js("start purchase --as liu.yang --set amount=1200", now=START)
    task = inst["tasks"][0]["id"]
    sh.ok(f"remind {task} --as liu.yang --comment 'needed by Friday'", now=START)
    event, recipients, data = outbox(db_url)[-1]
    assert (event, recipients) == ("remind_now", ["role:business_manager"])
    assert (data["by"], data["comment"]) == ("liu.yang", "needed by Friday")
    res = sh.refused(f"remind {task} --as liu.yang", "try again in 37 min", now=LATER)
    assert "at most one reminder an hour" in res.err
    told = len(outbox(db_url))
    sh.ok(f"remind {task} --as liu.yang", now=HOUR_ON)
    assert len(outbox(db_url)) == told + 1
    history = sh.js(f"show {inst['id']}", now=HOUR_ON)["history"]
    assert [h["action"] for h in history[-3:]] == ["remind", "denied", "remind"]


def test_who_may_remind(sh: Shell, db_url: str) -> None:
    inst = sh.js("start purchase --as liu.yang --set amount=1200", now=START)
    task = inst["tasks"][0]["id"]
    refused_unchanged(sh, db_url, inst["id"], f"remind {task} --as xu.ming", "xu.ming may not")
    sh.ok(f"remind {task} --as tang.li", now=START)  # admin_center: the owner_role
