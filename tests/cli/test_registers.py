"""Registers through ``run.py``: import (good and bad files), show, history, one process
writing a row and another reading it, and what the audit log says of both."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.cli.helpers import Shell
from tests.registers import BOOK, make_processes

NOW = "2026-03-02T10:00"


@pytest.fixture
def sh(db_url: str, tmp_path: Path) -> Shell:
    shell = Shell(db_url, processes=make_processes(tmp_path / "processes"))
    shell.ok("deploy", now=NOW)
    return shell


def book(tmp_path: Path, text: str = BOOK, name: str = "book.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_import_then_show_and_list(sh: Shell, tmp_path: Path) -> None:
    path = book(tmp_path)
    done = sh.js(f"register import credit_limits {path} --as lin.feng --comment 初始台账", NOW)
    assert done["rows"] == 2 and done["new"] == 2 and done["versions"] == [1, 2]
    assert done["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    rows = sh.js("register show credit_limits")
    assert [(r["customer"], r["grade"], r["credit_limit"], r["term_days"]) for r in rows] == [
        ("ACME", "A", "100000", 30),
        ("BETA", "B", "5000.50", 30),  # an empty cell on a new row: the field's default
    ]
    (listed,) = sh.js("registers")
    assert (listed["register"], listed["rows"], listed["version"]) == ("credit_limits", 2, 2)
    assert listed["writers"] == ["set_limit"]
    # one audit entry for the whole import, naming the operator, file hash and rows
    (entry,) = sh.js("audit --action register_import")
    assert entry["actor"] == "lin.feng" and entry["instance_id"] is None
    assert entry["process"] == "register:credit_limits"
    assert entry["data"] | {} == {
        "register": "credit_limits",
        "file": "book.csv",
        "sha256": done["sha256"],
        "rows": 2,
        "comment": "初始台账",
    }
    sh.ok("audit --verify")
    table = sh.ok("register show credit_limits ACME").out
    assert "credit_limit" in table and "100000" in table


def test_a_bad_file_lists_every_problem_and_writes_nothing(sh: Shell, tmp_path: Path) -> None:
    bad = book(
        tmp_path,
        "customer,grade,credit_limit,term_days\nACME,A,100000,30\nBETA,Z,12.345,99\nACME,B,1,1\n",
    )
    res = sh(f"register import credit_limits {bad} --as lin.feng", NOW)
    assert res.code == 1 and "Traceback" not in res.err
    lines = res.err.strip().splitlines()
    assert any(line.startswith(f"{bad}:3:2:") for line in lines), lines  # grade Z
    assert any(line.startswith(f"{bad}:3:3:") for line in lines), lines  # 3 decimals
    assert any(line.startswith(f"{bad}:3:4:") for line in lines), lines  # term over 50
    assert any(line.startswith(f"{bad}:4:1:") and "also on row 2" in line for line in lines)
    assert sh.js("register show credit_limits") == []
    assert sh.js("registers")[0]["version"] == 0
    assert sh.js("audit --action register_import") == []
    # an unknown column is named on the header line
    colour = book(tmp_path, "customer,colour\nX,red\n", "colour.csv")
    sh.refused(
        f"register import credit_limits {colour} --as lin.feng", ":1:2: unknown column 'colour'"
    )


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        # a cell beyond the csv module's field limit (131,072 characters)
        ("big.csv", "customer,grade\nA," + "x" * 200_000 + "\n", "big.csv:"),
        # nesting deeper than the JSON decoder's recursion allows
        ("deep.json", "[" * 100_000 + "]" * 100_000, "deep.json:"),
        # an integer longer than Python converts from text (4,300 digits)
        ("long.json", '[{"customer": "A", "term_days": ' + "9" * 5000 + "}]", "long.json:"),
    ],
)
def test_a_hostile_file_is_one_line_and_writes_nothing(
    sh: Shell, tmp_path: Path, name: str, content: str, match: str
) -> None:
    path = book(tmp_path, content, name)
    sh.refused(f"register import credit_limits {path} --as lin.feng", match, NOW)
    assert sh.js("registers")[0]["version"] == 0
    assert sh.js("audit --action register_import") == []


def test_json_import_and_operator_checks(sh: Shell, tmp_path: Path) -> None:
    rows = [{"customer": "C1", "grade": "C", "credit_limit": 10}, {"customer": "C2"}]
    path = book(tmp_path, json.dumps(rows), "book.json")
    sh.refused(f"register import credit_limits {path} --as nobody", "nobody")
    sh.refused(f"register import nosuch {path} --as lin.feng", "unknown register 'nosuch'")
    sh.refused(f"register import credit_limits {tmp_path / 'none.csv'} --as lin.feng", "no such")
    assert sh.js(f"register import credit_limits {path} --as lin.feng", NOW)["rows"] == 2
    assert [r["customer"] for r in sh.js("register show credit_limits")] == ["C1", "C2"]
    assert sh.js("register show credit_limits C1")["credit_limit"] == "10"


def test_only_the_registers_importers_may_import(sh: Shell, tmp_path: Path) -> None:
    """An import bypasses the processes that write a register (for the credit table: the
    GM's approval, 第十二条), so only the roles the register names under ``importers`` may
    import; a salesperson cannot give a customer a limit by importing a row."""
    path = book(tmp_path, "customer,grade,credit_limit\nACME,A,5000000\n")
    sh.refused(
        f"register import credit_limits {path} --as liu.yang",
        "liu.yang may not import into register 'credit_limits': needs role general_manager",
        NOW,
    )
    assert sh.js("registers")[0]["version"] == 0
    assert sh.js("audit --action register_import") == []
    assert sh.js(f"register import credit_limits {path} --as lin.feng", NOW)["rows"] == 1


def test_unknown_register_or_key_is_one_line(sh: Shell) -> None:
    sh.refused("register show nosuch", "unknown register 'nosuch'")
    sh.refused("register show credit_limits NOPE", "unknown register row 'NOPE'")
    sh.refused("register history credit_limits NOPE", "unknown register row 'NOPE'")


def test_show_pages_by_key(sh: Shell, tmp_path: Path) -> None:
    lines = "customer,grade\n" + "".join(f"K{i:02},A\n" for i in range(5))
    sh.ok(f"register import credit_limits {book(tmp_path, lines)} --as lin.feng", NOW)
    first = sh(["register", "show", "credit_limits", "--limit", "2", "-o", "json"])
    assert [r["customer"] for r in json.loads(first.out)] == ["K00", "K01"]
    assert first.err.strip() == "next: --after K01"
    rest = sh.js("register show credit_limits --after K01 --limit 10")
    assert [r["customer"] for r in rest] == ["K02", "K03", "K04"]


def test_a_process_writes_and_another_reads(sh: Shell, tmp_path: Path) -> None:
    sh.ok(f"register import credit_limits {book(tmp_path)} --as lin.feng", NOW)
    # an order above the imported limit waits for the general manager
    over = sh.js("start use_limit --as liu.yang --set customer=ACME --set amount=150000", NOW)
    assert over["state"] == "over"
    # the general manager approves a higher limit: set_limit writes the row
    req = sh.js(
        "start set_limit --as liu.yang --set customer=ACME --set credit_limit=200000 --set grade=B",
        NOW,
    )
    (task,) = sh.js("tasks --as lin.feng --process set_limit")
    sh.ok(f"act {task['id']} approve --as lin.feng", "2026-03-03T09:00")
    row = sh.js("register show credit_limits ACME")
    assert (row["credit_limit"], row["grade"], row["version"]) == ("200000", "B", 3)
    assert row["reviewed_on"] == "2026-03-03"
    history = sh.js("register history credit_limits ACME")
    assert [(h["version"], h["action"], h["actor"], h["instance_id"]) for h in history] == [
        (1, "import", "lin.feng", None),
        (3, "write", "lin.feng", req["id"]),
    ]
    assert history[1]["changes"]["credit_limit"] == {"old": "100000", "new": "200000"}
    assert "term_days" not in history[1]["changes"]  # not set: kept
    table = sh.ok("register history credit_limits ACME").out
    assert "credit_limit: 100000 -> 200000" in table
    # the same order now passes, and its start entry says which version it read
    within = sh.js("start use_limit --as liu.yang --set customer=ACME --set amount=150000", NOW)
    assert within["state"] == "within"
    (start,) = [e for e in sh.js(f"audit --instance {within['id']}") if e["action"] == "start"]
    assert start["data"]["registers_read"] == {"credit_limits": 3}
    (approved,) = [e for e in sh.js(f"audit --instance {req['id']}") if e["action"] == "approve"]
    assert approved["data"]["register_writes"][0]["key"] == "ACME"
    assert approved["data"]["register_writes"][0]["set"]["credit_limit"] == "200000"
    sh.ok("audit --verify")


def test_validate_counts_registers_and_schema_has_the_kind(sh: Shell, tmp_path: Path) -> None:
    folder = make_processes(tmp_path / "again")
    assert "1 register(s)" in sh.ok(["validate", str(folder)]).out
    schema = json.loads(sh.ok("schema --kind register").out)
    assert schema["title"] == "Shenpi register file"
    assert {"register", "key", "fields", "writers"} <= set(schema["properties"])


WEEKLY_REVIEW = """\
process: limit_review
title: Weekly look at the credit limits (test)
registers: {read: [credit_limits]}
variables:
  customers: {type: integer}
  total: {type: money}
start:
  set:
    customers: "register_keys('credit_limits') | length"
    total: "register_rows('credit_limits') | map(attribute='credit_limit') | select | sum"
  to: look
schedules:
  - {name: monday, cron: "0 8 * * 1", as: lin.feng}
states:
  look:
    task:
      role: general_manager
      actions: {done: {to: finished}}
    deadline:
      days: 1
      escalations:
        - goto: recount
  recount:
    set:
      customers: "register_keys('credit_limits') | length"
    route:
      - {to: finished}
  finished:
    final: true
"""


def test_schedules_and_timers_read_registers(db_url: str, tmp_path: Path) -> None:
    folder = make_processes(tmp_path / "processes")
    (folder / "limit_review.yaml").write_text(WEEKLY_REVIEW, encoding="utf-8")
    sh = Shell(db_url, processes=folder)
    sh.ok("deploy", now="2026-03-01T10:00")
    sh.ok(f"register import credit_limits {book(tmp_path)} --as lin.feng", "2026-03-01T10:00")
    assert sh.js("tick", now="2026-03-02T08:00:30")["failed"] == 0  # Monday 08:00
    (inst,) = sh.js("instances --process limit_review")
    shown = sh.js(f"show {inst['id']}")
    assert shown["variables"]["customers"] == 2
    assert shown["variables"]["total"] == "105000.50"
    (start,) = sh.js(f"audit --instance {inst['id']} --action start")
    assert start["data"]["registers_read"] == {"credit_limits": 2}
    # one more customer; the escalation's step a day later reads the register again
    more = book(tmp_path, "customer,grade\nGAMMA,C\n", "more.csv")
    sh.ok(f"register import credit_limits {more} --as lin.feng", "2026-03-02T09:00")
    assert sh.js("tick", now="2026-03-06T10:00")["failed"] == 0
    shown = sh.js(f"show {inst['id']}")
    assert shown["state"] == "finished" and shown["variables"]["customers"] == 3
    (esc,) = sh.js(f"audit --instance {inst['id']} --action escalation")
    assert esc["data"]["registers_read"] == {"credit_limits": 3}
