"""Payment delay (第十五条): the salesperson's own 主管经理 approves, through the CLI."""

from __future__ import annotations

from typing import Any

import pytest

from . import cli

START = (
    "start payment_delay --as liu.yang --set dealer=华北经销商 --set amount=120000.00 "
    "--set due_date=2026-11-30 --set requested_due=2026-12-31 --set reason=资金周转"
)
MON = "2026-11-30T10:00:00+08:00"  # a Monday


def started(sh: Any) -> tuple[str, str]:
    inst = sh.js(START, now=MON)
    return inst["id"], inst["tasks"][0]["id"]


def test_the_request_goes_to_the_salespersons_own_manager_only(sqlite_url: str) -> None:
    sh = cli(sqlite_url, "payment_delay", deployed_at=MON)
    _, task = started(sh)
    assert [t["id"] for t in sh.js("tasks --as xu.ming", now=MON)] == [task]
    # he.jing manages the south branch: not her salesperson, not her task
    assert sh.js("tasks --as he.jing", now=MON) == []
    sh.refused(f"act {task} approve --as he.jing", "is assigned to xu.ming", now=MON)
    # and the requester's other manager-like role holders see nothing either
    assert sh.js("tasks --as zhang.wei", now=MON) == []


def test_a_shorter_delay_is_approved_and_finance_is_copied(db_url: str) -> None:
    sh = cli(db_url, "payment_delay", deployed_at=MON)
    inst, task = started(sh)
    sh.refused(
        f"act {task} approve --as xu.ming --set approved_due=2027-01-15",
        "not after the date asked for",
        now=MON,
    )
    sh.ok(f"act {task} approve --as xu.ming --set approved_due=2026-12-15", now=MON)
    shown = sh.js(f"show {inst}", now=MON)
    assert shown["status"] == "completed" and shown["outcome"] == "approved"
    assert shown["variables"]["approved_due"] == "2026-12-15"
    assert {r["user"] for r in shown["cc"]} >= {"deng.ping", "feng.xue"}  # the finance role


def test_sent_back_to_the_salesperson_comes_straight_back_to_the_manager(
    sqlite_url: str,
) -> None:
    sh = cli(sqlite_url, "payment_delay", deployed_at=MON)
    inst, task = started(sh)
    sh.refused(f"rollback {task} --to start --as xu.ming", "comment", now=MON)
    sh.ok(f"rollback {task} --to start --as xu.ming --comment 请附经销商说明", now=MON)
    (revise,) = sh.js("tasks --as liu.yang", now=MON)
    sh.ok(f"act {revise['id']} resubmit --as liu.yang --set reason=经销商书面说明已附", now=MON)
    (again,) = sh.js("tasks --as xu.ming", now=MON)
    assert again["state"] == "manager_review"
    shown = sh.js(f"show {inst}", now=MON)
    assert shown["variables"]["reason"] == "经销商书面说明已附"
    assert any(o.get("comment") == "请附经销商说明" for o in shown["opinions"])


def test_withdrawn_only_until_the_manager_acts(sqlite_url: str) -> None:
    sh = cli(sqlite_url, "payment_delay", deployed_at=MON)
    inst, _ = started(sh)
    sh.refused(f"withdraw {inst} --as huang.tao", "", now=MON)
    sh.ok(f"withdraw {inst} --as liu.yang --comment 经销商已付款", now=MON)
    assert sh.js(f"show {inst}", now=MON)["status"] == "withdrawn"
    assert sh.js("tasks --as xu.ming", now=MON) == []


@pytest.mark.parametrize(
    ("now", "holders"),
    [
        ("2026-12-01T17:29:00+08:00", {"xu.ming"}),  # before the deadline (1 working day)
        ("2026-12-02T23:59:00+08:00", {"xu.ming"}),  # late, but within the next working day
        # a whole working day after the deadline's day: xu.ming's own manager joins him
        ("2026-12-03T00:00:00+08:00", {"xu.ming", "zhang.wei"}),
    ],
)
def test_a_late_decision_goes_up_to_the_managers_manager(
    sqlite_url: str, now: str, holders: set[str]
) -> None:
    sh = cli(sqlite_url, "payment_delay", deployed_at=MON)
    _, task = started(sh)
    sh.ok("tick", now=now)
    waiting = {u for u in ("xu.ming", "zhang.wei", "he.jing") if sh.js(f"tasks --as {u}", now=now)}
    assert waiting == holders
