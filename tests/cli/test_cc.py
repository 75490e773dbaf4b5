"""`cc` (抄送) and `cc:` in YAML through the CLI, on SQLite and PostgreSQL."""

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
    return sh.js(
        "start purchase --as liu.yang --set amount=1200 --set secret=s1 --set buyer=ma.hui",
        now=START,
    )


def test_the_requester_copies_readers_who_may_show_it(sh: Shell, db_url: str) -> None:
    inst = request(sh)
    res = sh.ok(f"cc {inst['id']} --to peng.lv,song.jia --as liu.yang --comment 'FYI'", now=START)
    assert res.out.strip() == f"copied: instance {inst['id']} to peng.lv, song.jia"
    event, recipients, data = outbox(db_url)[-1]
    assert (event, recipients, data["comment"]) == (
        "cc",
        ["user:peng.lv", "user:song.jia"],
        "FYI",
    )
    shown = sh.js(f"show {inst['id']} --as peng.lv", now=START)
    assert [r["user"] for r in shown["cc"]] == ["peng.lv", "song.jia"]
    assert shown["variables"]["secret"] == "***"  # a reader is not entitled to confidential
    text = sh.ok(f"show {inst['id']} --as peng.lv", now=START).out
    assert "cc       peng.lv, song.jia" in text
    refused_unchanged(
        sh, db_url, inst["id"], f"cc {inst['id']} --to peng.lv --as liu.yang", "already receive"
    )


def test_only_participants_copy(sh: Shell, db_url: str) -> None:
    inst = request(sh)
    refused_unchanged(
        sh, db_url, inst["id"], f"cc {inst['id']} --to peng.lv --as song.jia", "song.jia is none"
    )
    refused_unchanged(
        sh, db_url, inst["id"], f"cc {inst['id']} --to ghost --as liu.yang", "unknown user 'ghost'"
    )
    sh.ok(f"cc {inst['id']} --to peng.lv --as he.jing", now=START)  # may act on it now


def test_yaml_cc_on_entering_a_state_and_on_completion(sh: Shell) -> None:
    inst = request(sh)
    task = inst["tasks"][0]["id"]
    board = sh.js(f"act {task} approve --as xu.ming", now=START)
    assert [r["user"] for r in board["cc"]] == ["ma.hui"]  # buyer, on entering finance
    task = board["tasks"][0]["id"]
    sh.ok(f"act {task} approve --as guo.yan", now=START)
    done = sh.js(f"act {task} approve --as deng.ping", now=START)
    assert done["outcome"] == "approved"
    assert [r["user"] for r in done["cc"]] == ["ma.hui", "cao.yu"]  # internal_audit at the end
    # a decided request may still be copied, by someone who acted on it
    sh.ok(f"cc {inst['id']} --to peng.lv --as deng.ping", now=START)
