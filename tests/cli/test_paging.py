"""List commands through the CLI: a correct inbox, --limit/--after paging, refusals."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from engine.runtime import Start, fire
from service.workflow import Workflow, new_id
from storage.store import Store

from .helpers import PROCESSES, Shell

FOUR_EYES = """\
process: fourx
title: Four eyes
four_eyes: true
variables:
  note: {type: string}
start: {to: check, accept: [note]}
states:
  check:
    deadline: {working_days: 1}
    task:
      role: complaint_clerk
      actions:
        ok: {to: done}
  done: {final: true}
"""
EARLY = datetime.fromisoformat("2026-09-01T10:00:00+08:00")
LATER = datetime.fromisoformat("2026-09-03T10:00:00+08:00")


def bulk_start(wf: Workflow, process: str, user: str, n: int, now: datetime) -> list[str]:
    """n instances in one transaction (a commit each would make this test slow)."""
    version = wf.latest_version(process)
    proc = wf.process(process, version)
    actor = wf.actor(user)
    steps = [
        (fire(proc, None, Start(new_id(), version), actor, {"note": "x"}, now), None)
        for _ in range(n)
    ]
    wf.store.apply_batch(steps, now)
    return [outcome.snapshot.id for outcome, _ in steps]


@pytest.fixture
def four_eyes(db_url: str, tmp_path: Path) -> tuple[Shell, list[str], str]:
    """wang.fang requested 1001 tasks due first; zhao.lei one due later. Both are clerks."""
    folder = tmp_path / "processes"
    folder.mkdir()
    shutil.copy(PROCESSES / "org.yaml", folder / "org.yaml")
    (folder / "fourx.yaml").write_text(FOUR_EYES, encoding="utf-8")
    with Store.open(db_url) as store:
        wf = Workflow(store, folder)
        wf.deploy()
        own = bulk_start(wf, "fourx", "wang.fang", 1001, EARLY)
        (other,) = bulk_start(wf, "fourx", "zhao.lei", 1, LATER)
    return Shell(db_url, folder), own, other


def test_inbox_shows_waiting_task_behind_many_excluded_by_four_eyes(
    four_eyes: tuple[Shell, list[str], str],
) -> None:
    sh, own, other = four_eyes
    inbox = sh.js("tasks --as wang.fang")
    assert [t["instance_id"] for t in inbox] == [other]

    first = sh.ok("tasks --as wang.fang --limit 1 -o json")
    assert [t["instance_id"] for t in first.json()] == [other]
    # zhao.lei may act on all of wang.fang's requests but not on his own
    seen: list[str] = []
    after: list[str] = []
    while True:
        res = sh.ok(["tasks", "--as", "zhao.lei", "--limit", "400", *after, "-o", "json"])
        seen += [t["instance_id"] for t in res.json()]
        if not res.err.startswith("next: --after "):
            break
        after = ["--after", res.err.split()[-1]]
    assert sorted(seen) == sorted(own) and len(seen) == len(set(seen))
    # without --as nobody is filtered out: the role's first task is one of wang.fang's
    assert sh.js("tasks --role complaint_clerk --limit 1")[0]["instance_id"] in own


# ---------------------------------------------------------------------- paging


@pytest.fixture
def sh(db_url: str) -> Shell:
    shell = Shell(db_url)
    shell.ok("deploy")
    for i in range(5):
        shell.ok(
            [
                "start",
                "complaint",
                "--as",
                "wang.fang",
                "--set",
                "kind=complaint",
                "--set",
                f"customer=客户{i}",
                "--set",
                "contact=13800000000",
                "--set",
                "content=停电",
                "--set",
                "subject=抄表员",
            ],
            now=f"2026-09-{21 + i % 3}T10:00:00+08:00",  # equal due times among them
        )
    return shell


def pages(sh: Shell, command: list[str], limit: int) -> list[dict]:
    """Follow 'next: --after CURSOR' on stderr to the end; every page at most limit rows."""
    rows: list[dict] = []
    after: list[str] = []
    for _ in range(100):
        res = sh.ok([*command, "--limit", str(limit), *after, "-o", "json"])
        page = res.json()
        assert len(page) <= limit
        rows += page
        if not res.err:
            return rows
        (line,) = res.err.splitlines()
        assert line.startswith("next: --after ")
        after = ["--after", line.split()[-1]]
    raise AssertionError("never ended")


LISTINGS = [
    (["tasks"], "id"),
    (["tasks", "--as", "zhao.lei"], "id"),
    (["tasks", "--overdue"], "id"),
    (["instances"], "id"),
    (["instances", "--state", "accepting"], "id"),
    (["audit", "--process", "complaint"], "seq"),
    (["audit", "--actor", "wang.fang"], "seq"),
    (["users"], "id"),
]


def test_pages_return_every_row_once(sh: Shell) -> None:
    now = "2026-10-30T10:00:00+08:00"
    for command, key in LISTINGS:
        whole = sh.ok([*command, "--limit", "1000", "-o", "json"], now=now)
        assert whole.err == ""
        everything = [r[key] for r in whole.json()]
        assert len(everything) >= 5
        for limit in (1, 3):
            got = [r[key] for r in pages(sh, ["--now", now, *command], limit)]
            assert got == everything, (command, limit)


def test_table_output_names_the_next_page(sh: Shell) -> None:
    res = sh.ok("instances --limit 2")
    assert len(res.out.strip().splitlines()) == 3  # header and two rows
    assert res.err.startswith("next: --after ") and len(res.err.splitlines()) == 1
    rest = sh.ok(["instances", "--limit", "10", "--after", res.err.split()[-1]])
    assert len(rest.out.strip().splitlines()) == 4 and rest.err == ""


def test_bad_limit_is_one_line_and_exit_2(sqlite_url: str) -> None:
    sh = Shell(sqlite_url)
    for command in ("tasks", "instances", "audit", "users"):
        for bad in ("0", "-1", "1001", "ten", "2.5", ""):
            res = sh([command, "--limit", bad])
            assert res.code == 2 and res.out == ""
            assert res.err.strip().splitlines() == [
                f"error: --limit: expected a whole number from 1 to 1000, not {bad!r}"
            ]


def test_bad_cursor_is_one_line_and_exit_2(sh: Shell) -> None:
    res = sh.ok("audit --limit 1")
    audit_cursor = res.err.split()[-1]
    for command, cursor in [
        ("tasks", "not-a-cursor"),
        ("tasks", audit_cursor),
        ("instances", audit_cursor[:-2]),
        ("users", "W10"),
        ("audit", "eyJhIjoxfQ"),
    ]:
        res = sh([command, "--after", cursor])
        assert res.code == 2 and res.out == "", (command, cursor)
        (line,) = res.err.strip().splitlines()
        assert line.startswith(f"error: --after: not a cursor of the {command} listing"), line


def test_forged_cursors_that_sql_cannot_hold_are_refused_not_crashed(sh: Shell) -> None:
    """A cursor is only base64 JSON: one made by hand must still be a refusal, exit 2."""
    import base64
    import json

    def forge(*key: object) -> str:
        raw = json.dumps(list(key)).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    for command, cursor in [
        ("audit", forge("audit", 10**23)),  # past 64 bits: OverflowError / bigint range
        ("instances", forge("instances", "0001-01-01T00:00:00+00:00", "x")),
        ("tasks", forge("tasks", None, "a\u0000b")),  # NUL: PostgreSQL refuses text with it
        ("users", forge("users", "a\nb")),
    ]:
        res = sh([command, "--after", cursor])
        assert res.code == 2 and res.out == "" and "Traceback" not in res.err, (command, res.err)
        (line,) = res.err.strip().splitlines()
        assert line.startswith(f"error: --after: not a cursor of the {command} listing"), line
