"""Opinions (审批意见) in ``show`` and ``audit``, ``tasks --done-by`` and
``instances --requester``, through the CLI on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from .approvals import purchase_processes
from .helpers import Shell

AT = "2026-09-30T10:00:00+08:00"


def t(hour: int) -> str:
    return f"2026-09-30T{hour:02d}:00:00+08:00"


@pytest.fixture
def sh(db_url: str, tmp_path: Path) -> Shell:
    shell = Shell(db_url, purchase_processes(tmp_path / "processes"))
    shell.ok("deploy")
    return shell


def countersigned(sh: Shell, requester: str = "wang.fang", item: str = "laptop") -> str:
    """An instance sent back once, resubmitted, approved, and signed by CFO then GM."""
    inst = sh.js(f"start purchase --as {requester} --set item={item} --set bank=6222-01", now=AT)
    iid = inst["id"]
    sh.ok(["act", f"{iid}-1", "send_back", "--as", "deng.ping", "--comment", "请补充报价单"], t(11))
    sh.ok(["act", f"{iid}-2", "resubmit", "--as", "zhao.lei", "--comment", "已补充三家报价"], t(12))
    sh.ok(["act", f"{iid}-3", "approve", "--as", "feng.xue"], t(13))
    sh.ok(["act", f"{iid}-4", "sign", "--as", "guo.yan", "--comment", "同意，注意发票"], t(14))
    sh.ok(["act", f"{iid}-4", "sign", "--as", "lin.feng", "--comment", "同意\n尽快采购"], t(15))
    return str(iid)


def test_show_keeps_every_opinion_of_a_countersign(sh: Shell) -> None:
    iid = countersigned(sh)
    shown = sh.js(f"show {iid}")
    assert shown["outcome"] == "approved"
    got = [
        (o["actor"], o["state"], o["step"], o["action"], o["comment"]) for o in shown["opinions"]
    ]
    assert got == [
        ("wang.fang", None, None, "start", None),
        ("deng.ping", "review", "Finance review", "send_back", "请补充报价单"),
        ("zhao.lei", "revise", "Revise the request", "resubmit", "已补充三家报价"),
        ("feng.xue", "review", "Finance review", "approve", None),
        # the GM's signature did not overwrite the CFO's opinion
        ("guo.yan", "signoff", "CFO and GM sign", "sign", "同意，注意发票"),
        ("lin.feng", "signoff", "CFO and GM sign", "sign", "同意\n尽快采购"),
    ]
    assert [o["task_id"] for o in shown["opinions"][1:]] == [f"{iid}-{n}" for n in (1, 2, 3, 4, 4)]
    assert shown["opinions"][4]["role"] == "cfo" and shown["opinions"][4]["at"].startswith(
        "2026-09-30T14:00:00"
    )

    table = sh.ok(f"show {iid}").out
    section = table.split("opinions:\n")[1].split("history:\n")[0].splitlines()
    assert section[0].split() == ["AT", "ACTOR", "ON_BEHALF_OF", "STATE", "ACTION", "COMMENT"]
    assert section[2].split()[1:] == ["deng.ping", "-", "review", "send_back", "请补充报价单"]
    assert section[6].split()[1:] == ["lin.feng", "-", "signoff", "sign", "同意", "尽快采购"]
    history = table.split("history:\n")[1].splitlines()
    assert history[0].split()[-1] == "COMMENT"


def test_a_refusal_is_no_opinion_and_a_masked_viewer_still_reads_opinions(sh: Shell) -> None:
    iid = sh.js("start purchase --as wang.fang --set item=x --set bank=6222-01", now=AT)["id"]
    sh.refused(f"act {iid}-1 approve --as li.qiang", "needs role", now=t(11))
    sh.ok(["act", f"{iid}-1", "approve", "--as", "deng.ping", "--comment", "预算内"], t(12))
    shown = sh.js(f"show {iid} --as deng.ping")
    assert shown["variables"]["bank"] == "***"
    assert [e["action"] for e in shown["history"]] == ["start", "denied", "approve"]
    assert [(o["action"], o["comment"]) for o in shown["opinions"]] == [
        ("start", None),
        ("approve", "预算内"),
    ]


def test_audit_table_has_the_comment_column_whole(sh: Shell) -> None:
    iid = countersigned(sh)
    long = "预算" * 40  # longer than a table cell's 60 characters
    other = sh.js("start purchase --as wang.fang --set item=x --set bank=1", now=AT)["id"]
    sh.ok(["act", f"{other}-1", "reject", "--as", "deng.ping", "--comment", long], t(11))
    lines = sh.ok(f"audit --instance {iid} --action sign").out.splitlines()
    assert lines[0].split()[-1] == "COMMENT"
    assert lines[1].split()[-1] == "同意，注意发票"
    assert lines[2].split()[-2:] == ["同意", "尽快采购"]  # a newline shows as a space
    rejected = sh.ok(f"audit --instance {other} --action reject").out.splitlines()[1]
    assert rejected.endswith(long)
    entries = sh.js(f"audit --instance {iid}")
    assert [e["comment"] for e in entries if e["action"] == "sign"] == [
        "同意，注意发票",
        "同意\n尽快采购",
    ]
    assert all(e["comment"] == (e["data"] or {}).get("comment") for e in entries)


def test_tasks_done_by_lists_decisions_and_signatures_newest_first(sh: Shell) -> None:
    first = countersigned(sh)
    second = countersigned(sh, item="desk")
    rows = sh.js("tasks --done-by guo.yan")
    assert [(r["id"], r["action"], r["comment"]) for r in rows] == [
        (f"{second}-4", "sign", "同意，注意发票"),
        (f"{first}-4", "sign", "同意，注意发票"),
    ]
    # the task was closed by the GM's signature: the CFO's row says so
    assert (rows[0]["task_status"], rows[0]["decided_by"], rows[0]["state"]) == (
        "done",
        "lin.feng",
        "signoff",
    )
    assert rows[0]["title"] == "CFO and GM sign" and rows[0]["role"] == "cfo"
    deng = sh.js("tasks --done-by deng.ping --limit 1")
    assert [(r["id"], r["action"]) for r in deng] == [(f"{second}-1", "send_back")]
    res = sh.ok("tasks --done-by deng.ping --limit 1")
    cursor = res.err.strip().removeprefix("next: --after ")
    rest = sh.js(f"tasks --done-by deng.ping --after {cursor}")
    assert [(r["id"], r["comment"]) for r in rest] == [(f"{first}-1", "请补充报价单")]
    header = res.out.splitlines()[0].split()
    assert header == ["AT", "ID", "PROCESS", "STATE", "ACTION", "TASK_STATUS", "COMMENT"]
    assert sh.js("tasks --done-by he.jing") == []


def test_tasks_done_by_refusals(sh: Shell) -> None:
    res = sh("tasks --done-by deng.ping --as deng.ping")
    assert (res.code, res.err.strip()) == (2, "error: --as cannot go with --done-by")
    assert sh("tasks --done-by deng.ping --overdue").code == 2
    sh.refused("tasks --done-by ghost", "unknown user 'ghost'")
    countersigned(sh)
    countersigned(sh)
    tasks_cursor = sh("tasks --all --limit 1 -o json").err.strip().removeprefix("next: --after ")
    assert tasks_cursor
    res = sh(f"tasks --done-by deng.ping --after {tasks_cursor}")
    assert res.code == 2 and "not a cursor of the done listing" in res.err
    done_cursor = sh("tasks --done-by deng.ping --limit 1").err.strip().split()[-1]
    res = sh(f"tasks --after {done_cursor}")
    assert res.code == 2 and "not a cursor of the tasks listing" in res.err


def test_instances_requester_me_lists_my_requests_masked_for_me(sh: Shell) -> None:
    mine = [countersigned(sh, "wang.fang", "a"), countersigned(sh, "wang.fang", "b")]
    theirs = sh.js("start purchase --as zhao.lei --set item=c --set bank=9", now=AT)["id"]
    got = sh.js("instances --requester me --as wang.fang")
    assert [r["id"] for r in got] == mine
    assert got[0]["variables"]["bank"] == "6222-01"  # the requester sees their own
    assert [r["id"] for r in sh.js("instances --requester zhao.lei")] == [theirs]
    as_finance = sh.js("instances --requester wang.fang --as deng.ping")
    assert [r["variables"]["bank"] for r in as_finance] == ["***", "***"]
    assert [r["id"] for r in sh.js("instances --requester me --as zhao.lei --status active")] == [
        theirs
    ]
    assert sh.js("instances --requester me --as zhao.lei --status completed") == []
    page = sh.ok("instances --requester wang.fang --limit 1")
    assert page.out.splitlines()[1].split()[0] == mine[0]
    cursor = page.err.strip().removeprefix("next: --after ")
    assert [r["id"] for r in sh.js(f"instances --requester wang.fang --after {cursor}")] == [
        mine[1]
    ]
    res = sh("instances --requester me")
    assert (res.code, res.err.strip()) == (2, "error: --requester me needs --as USER (who 'me' is)")
    sh.refused("instances --requester ghost", "unknown user 'ghost'")
