"""`withdraw` (撤回) through the CLI, on SQLite and PostgreSQL."""

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


def request(sh: Shell, process: str = "purchase") -> dict:
    return sh.js(f"start {process} --as liu.yang --set amount=1200", now=START)


def test_the_requester_withdraws_a_pending_request(sh: Shell, db_url: str) -> None:
    inst = request(sh)
    [task] = inst["tasks"]
    res = sh.ok(f"withdraw {inst['id']} --as liu.yang --comment 'bought elsewhere'", now=START)
    assert res.out.strip() == f"withdrawn: instance {inst['id']} (was in manager)"
    shown = sh.js(f"show {inst['id']}", now=START)
    assert (shown["status"], shown["outcome"], shown["tasks"]) == ("withdrawn", "withdrawn", [])
    assert {t["status"] for t in shown["deadlines"]["timers"]} == {"cancelled"}
    assert shown["deadlines"]["instance_deadline"]["stopped_at"] is not None
    entry = shown["history"][-1]
    assert (entry["action"], entry["actor"]) == ("withdraw", "liu.yang")
    assert entry["data"]["comment"] == "bought elsewhere"
    assert sh.js("tasks --as xu.ming") == []
    [closed] = [t for t in sh.js("tasks --all") if t["id"] == task["id"]]
    assert (closed["status"], closed["decision"]) == ("cancelled", "withdrawn")
    event, recipients, data = outbox(db_url)[-1]
    assert (event, recipients) == ("withdrawn", ["role:business_manager"])
    assert data["comment"] == "bought elsewhere"
    assert [i["id"] for i in sh.js("instances --status withdrawn")] == [inst["id"]]
    sh.refused(
        f"act {task['id']} approve --as xu.ming",
        "already cancelled (withdrawn by liu.yang)",
        now=START,
    )


def test_withdraw_json_is_the_instance(sh: Shell) -> None:
    inst = request(sh)
    shown = sh.js(f"withdraw {inst['id']} --as liu.yang", now=START)
    assert shown["id"] == inst["id"] and shown["status"] == "withdrawn"


def test_someone_else_may_not_withdraw(sh: Shell, db_url: str) -> None:
    inst = request(sh)
    refused_unchanged(
        sh, db_url, inst["id"], f"withdraw {inst['id']} --as xu.ming", "only the requester"
    )


def test_a_completed_request_cannot_be_withdrawn(sh: Shell, db_url: str) -> None:
    inst = request(sh)
    sh.ok(f"act {inst['tasks'][0]['id']} reject --as xu.ming", now=START)
    refused_unchanged(
        sh, db_url, inst["id"], f"withdraw {inst['id']} --as liu.yang", "already completed"
    )


def test_the_owner_limits_withdrawing_to_before_the_first_approval(sh: Shell, db_url: str) -> None:
    inst = request(sh, "strict")
    sh.ok(f"act {inst['tasks'][0]['id']} approve --as xu.ming", now=START)
    refused_unchanged(
        sh, db_url, inst["id"], f"withdraw {inst['id']} --as liu.yang", "only in manager"
    )


def test_unknown_instance_and_help(sh: Shell) -> None:
    sh.refused("withdraw nosuch --as liu.yang", "unknown instance 'nosuch'")
    assert "撤回" in sh.ok("withdraw --help").out
