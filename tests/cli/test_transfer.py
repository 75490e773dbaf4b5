"""`transfer` (转交) through the CLI, on SQLite and PostgreSQL."""

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


def request(sh: Shell) -> dict:
    return sh.js("start purchase --as liu.yang --set amount=1200 --set secret=s1", now=START)


def test_transfer_hands_the_task_to_one_person(sh: Shell, db_url: str) -> None:
    inst = request(sh)
    task = inst["tasks"][0]["id"]
    res = sh.ok(f"transfer {task} --to lin.feng --as xu.ming --comment '出差一周'", now=START)
    assert res.out.strip() == f"transferred: task {task} to lin.feng"
    assert [t["id"] for t in sh.js("tasks --as lin.feng")] == [task]
    assert sh.js("tasks --as xu.ming") == [] and sh.js("tasks --as he.jing") == []
    sh.refused(f"act {task} approve --as xu.ming", "assigned to lin.feng", now=START)
    event, recipients, data = outbox(db_url)[-1]
    assert (event, recipients, data["comment"], data["by"]) == (
        "transferred",
        ["user:lin.feng"],
        "出差一周",
        "xu.ming",
    )
    after = sh.js(f"act {task} approve --as lin.feng", now=START)
    assert after["state"] == "finance"


def test_a_countersign_keeps_its_signatures(sh: Shell) -> None:
    inst = request(sh)
    task = sh.js(f"act {inst['tasks'][0]['id']} approve --as xu.ming", now=START)["tasks"][0]
    sh.ok(f"act {task['id']} approve --as guo.yan", now=START)
    shown = sh.js(f"transfer {task['id']} --to away.clerk --as deng.ping --comment busy", now=START)
    [moved] = shown["tasks"]
    assert moved["roles"] == ["user:away.clerk", "cfo"]
    assert [s["user"] for s in moved["signoffs"]] == ["guo.yan"]
    # away.clerk is away: cao.yu, the delegate, acts on their behalf
    done = sh.js(f"act {task['id']} approve --as cao.yu", now=START)
    assert done["outcome"] == "approved"
    assert done["history"][-1]["on_behalf_of"] == "away.clerk"


@pytest.mark.parametrize(
    ("to", "match"),
    [
        ("liu.yang", "four-eyes rule: liu.yang requested this"),
        ("old.hand", "old.hand is not active and has no active delegate"),
        ("away.boss", "four-eyes rule: liu.yang (acting for away.boss)"),
        ("nobody.here", "unknown user 'nobody.here'"),
    ],
)
def test_transfer_to_someone_who_may_not_act_is_refused(
    sh: Shell, db_url: str, to: str, match: str
) -> None:
    inst = request(sh)
    task = inst["tasks"][0]["id"]
    refused_unchanged(
        sh, db_url, inst["id"], f"transfer {task} --to {to} --as xu.ming --comment x", match
    )


def test_only_who_may_act_transfers_and_a_comment_is_required(sh: Shell, db_url: str) -> None:
    inst = request(sh)
    task = inst["tasks"][0]["id"]
    refused_unchanged(
        sh,
        db_url,
        inst["id"],
        f"transfer {task} --to lin.feng --as deng.ping --comment x",
        "needs role business_manager",
    )
    res = sh(f"transfer {task} --to lin.feng --as xu.ming")
    assert res.code == 2 and "--comment" in res.err
