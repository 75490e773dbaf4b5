"""Bad input through the CLI: one line, exit 1 (2 for usage), nothing changed, and the same
refusal on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .helpers import PROCESSES, Shell

RECEIVED = "2026-09-30T10:00:00+08:00"
LATER = "2026-09-30T11:00:00+08:00"
UNDECODABLE = os.fsdecode(b"\xff\xfe")  # what Python makes of these argv bytes
COMPLAINT = [
    "start", "complaint", "--as", "wang.fang", "--set", "kind=complaint",
    "--set", "contact=13800000000", "--set", "content=x", "--set", "subject=y",
]  # fmt: skip


@pytest.fixture
def sh(db_url: str) -> Shell:
    shell = Shell(db_url)
    shell.ok("deploy")
    return shell


def started(sh: Shell) -> dict:
    return sh.js([*COMPLAINT, "--set", "customer=刘女士"], now=RECEIVED)


def audit_count(sh: Shell) -> int:
    return len(sh.js("audit"))


def test_deeply_nested_data_is_refused_in_one_line(sh: Shell, tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"customer": ' + "[" * 10_000 + "]" * 10_000 + "}", encoding="utf-8")
    sh.refused([*COMPLAINT, "--data", str(deep)], "nested deeper than 64 levels", now=RECEIVED)
    assert sh.js("instances") == []


@pytest.mark.parametrize(
    ("extra", "field", "reason"),
    [
        (["--set", f"customer={UNDECODABLE}"], "customer", "lone surrogate U+DCFF"),
        (["--set", "customer=a\x00b"], "customer", "control character U+0000"),
        (["--set", "customer=a\x1b[2Jb"], "customer", "control character U+001B"),
        (["--set", "customer=c", "--set", "content=a\x00"], "content", "U+0000"),
        (["--set", f"{UNDECODABLE}=1"], "variable name", "lone surrogate"),
    ],
)
def test_start_refuses_undecodable_and_control_characters_with_the_field_named(
    sh: Shell, extra: list[str], field: str, reason: str
) -> None:
    before = audit_count(sh)
    res = sh.refused([*COMPLAINT, *extra], reason, now=RECEIVED)
    assert res.err.startswith(f"error: {field}: "), res.err
    assert sh.js("instances") == [] and audit_count(sh) == before
    sh.ok("audit --verify")


def test_data_file_with_a_lone_surrogate_or_nul_is_refused(sh: Shell, tmp_path: Path) -> None:
    for text, reason in (('"\\ud800"', "lone surrogate U+D800"), ('"a\\u0000"', "U+0000")):
        data = tmp_path / "d.json"
        data.write_text('{"customer": ' + text + "}", encoding="utf-8")
        res = sh.refused([*COMPLAINT, "--data", str(data)], reason, now=RECEIVED)
        assert res.err.startswith("error: customer: ")
    assert sh.js("instances") == []


def test_act_refuses_a_bad_action_name_or_comment_before_anything_is_recorded(
    sh: Shell,
) -> None:
    task = started(sh)["tasks"][0]["id"]
    before = audit_count(sh)
    sh.refused(["act", task, UNDECODABLE, "--as", "zhao.lei"], "action: ", now=LATER)
    sh.refused(["act", task, "acc\x00ept", "--as", "zhao.lei"], "action: ", now=LATER)
    for comment in (UNDECODABLE, "\x07bell"):
        sh.refused(
            ["act", task, "accept", "--as", "zhao.lei", "--comment", comment,
             "--set", "first_contact=x"],
            "comment: ",
            now=LATER,
        )  # fmt: skip
    sh.refused(["act", task, "accept", "--as", UNDECODABLE], "user: ", now=LATER)
    assert audit_count(sh) == before
    # a well-formed action the task does not offer is still recorded as denied
    sh.refused(["act", task, "approve", "--as", "zhao.lei"], "not an action", now=LATER)
    [denied] = sh.js("audit --action denied")
    assert denied["data"]["action"] == "approve"
    sh.ok("audit --verify")
    # and a comment with newline and tab is fine
    sh.ok(
        ["act", task, "accept", "--as", "zhao.lei", "--comment", "a\tb\nc",
         "--set", "first_contact=x"],
        now=LATER,
    )  # fmt: skip


def test_show_refuses_an_undecodable_id(sh: Shell) -> None:
    sh.refused(["show", UNDECODABLE], "instance id: ")


def test_numbers_with_separators_are_refused_not_guessed(sh: Shell, tmp_path: Path) -> None:
    credit = ["start", "credit_override", "--as", "liu.yang", "--set", "customer=c"]
    for raw in ("1,5", "1,00,0", "1_000"):
        sh.refused([*credit, "--set", f"requested_credit={raw}"], "expected a number", now=LATER)
    assert sh.js("instances") == []
    # credit_override reads the customer's line from the credit table
    book = tmp_path / "credit.csv"
    book.write_text("customer,grade,credit_limit,term_days\nc,A,2000000,50\n", encoding="utf-8")
    sh.ok(["register", "import", "customer_credit", str(book), "--as", "ma.hui"], now=LATER)
    inst = sh.js([*credit, "--set", "requested_credit=1500.50"], now=LATER)
    assert inst["variables"]["requested_credit"] == "1500.50"


def test_duplicate_keys_in_data_are_refused(sh: Shell, tmp_path: Path) -> None:
    data = tmp_path / "dup.json"
    data.write_text('{"customer": "a", "customer": "b"}', encoding="utf-8")
    sh.refused([*COMPLAINT, "--data", str(data)], "duplicate key 'customer'", now=RECEIVED)
    assert sh.js("instances") == []


def test_validate_a_folder_without_yaml_fails(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no yaml here", encoding="utf-8")
    sh = Shell(f"sqlite:///{tmp_path / 'x.db'}")
    sh.refused(["validate", str(empty)], "no YAML files")
    sh.refused(["deploy", str(empty)], "no YAML files")
    assert not (tmp_path / "x.db").exists()
    assert "ok: 1 process(es)" in sh.ok(["validate", str(PROCESSES / "complaint.yaml")]).out


def test_unknown_database_schemes_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for url in ("foo:bar", "mysql://u@h/db", "postgresql+psycopg2://u@h/db", ""):
        Shell(url).refused("deploy", "unsupported database URL")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    ["tasks", "show abc", "instances", "audit", "audit --verify", "tick",
     "start complaint --as wang.fang", "act abc-1 accept --as zhao.lei",
     "register show credit", "register history credit x",
     "register import credit book.csv --as wang.fang"],
)  # fmt: skip
def test_commands_other_than_deploy_do_not_create_a_database(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "new" / "dir" / "shenpi.db"
    Shell(f"sqlite:///{missing}").refused(command, "no database at")
    assert list(tmp_path.iterdir()) == []


def test_read_only_commands_leave_an_empty_postgresql_schema_empty(pg_url: str) -> None:
    import sqlalchemy as sa

    Shell(pg_url).refused("tasks", "no database at")
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []
    finally:
        engine.dispose()
    Shell(pg_url).ok("deploy")
    assert Shell(pg_url).js("tasks") == []


@pytest.mark.parametrize("command", ["users", "calendar 2026", "registers"])
def test_commands_that_read_only_files_need_no_database(tmp_path: Path, command: str) -> None:
    """The org directory and the calendars are files: a newcomer may look before deploying."""
    sh = Shell(f"sqlite:///{tmp_path / 'new' / 'x.db'}")
    assert sh.ok(command).out
    assert list(tmp_path.iterdir()) == []


def test_graph_still_reads_the_file_before_any_deploy(tmp_path: Path) -> None:
    sh = Shell(f"sqlite:///{tmp_path / 'x.db'}")
    assert "stateDiagram-v2" in sh.ok("graph complaint").out
    assert not (tmp_path / "x.db").exists()


def test_graph_of_an_unknown_process_says_so_before_any_deploy(tmp_path: Path) -> None:
    sh = Shell(f"sqlite:///{tmp_path / 'x.db'}")
    res = sh.refused("graph nosuch", "unknown process 'nosuch'; neither deployed nor in")
    assert "complaint" in res.err and "deploy" not in res.err.split(";")[0]
    assert not (tmp_path / "x.db").exists()


def test_deploy_as_an_unknown_user_is_refused_and_not_audited(db_url: str) -> None:
    sh = Shell(db_url)
    sh.refused("deploy --as nobody.atall", "unknown user 'nobody.atall'")
    sh.ok("deploy --as wang.fang")
    [entry] = {e["actor"] for e in sh.js("audit --action deploy")}
    assert entry == "wang.fang"


def test_act_earlier_than_the_last_step_is_refused(sh: Shell) -> None:
    task = started(sh)["tasks"][0]["id"]
    before = audit_count(sh)
    sh.refused(
        ["act", task, "accept", "--as", "zhao.lei", "--set", "first_contact=x"],
        "earlier than the last recorded step",
        now="2026-09-30T09:59:59+08:00",
    )
    # also when the action would have been denied: nothing is dated into the past
    sh.refused(["act", task, "nope", "--as", "zhao.lei"], "earlier", now="2026-09-29T10:00+08:00")
    assert audit_count(sh) == before
    done = sh.js(
        ["act", task, "accept", "--as", "zhao.lei", "--set", "first_contact=x"], now=RECEIVED
    )
    assert done["state"] == "handling"
    history = sh.js(["show", done["id"]])["history"]
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)


@pytest.mark.parametrize(
    "now", ["9000-12-31T23:59-23:59", "9001-01-01T00:00+08:00", "1900-01-01T00:00+23:59"]
)
def test_now_past_the_documented_years_is_refused_including_offsets(
    tmp_path: Path, now: str
) -> None:
    res = Shell(f"sqlite:///{tmp_path / 'x.db'}")("deploy", now=now)
    assert res.code == 2 and "outside the years 1900-9000" in res.err, res.err
    assert not (tmp_path / "x.db").exists()


def test_now_at_the_edge_of_the_documented_years_is_accepted(tmp_path: Path) -> None:
    sh = Shell(f"sqlite:///{tmp_path / 'x.db'}")
    sh.ok("deploy", now="9000-12-31T23:59+00:00")
    assert json.loads(sh.ok("tasks -o json", now="1900-01-01T00:00-08:00").out) == []
