"""The purchase request of the YAML reference, through the CLI: manager, finance, a
countersign by amount, send back, withdraw, escalation to the approver's manager."""

from __future__ import annotations

from typing import Any

from . import cli

MON = "2026-11-30T10:00:00+08:00"


def start(sh: Any, amount: str) -> tuple[str, str]:
    inst = sh.js(
        f"start purchase_request --as huang.tao --set item=笔记本电脑 --set amount={amount} "
        "--set reason=新员工",
        now=MON,
    )
    return inst["id"], inst["tasks"][0]["id"]


def only_task(sh: Any, user: str) -> str:
    (task,) = sh.js(f"tasks --as {user}", now=MON)
    return str(task["id"])


def test_a_small_purchase_needs_the_manager_and_finance(db_url: str) -> None:
    sh = cli(db_url, "purchase_request", deployed_at=MON)
    inst, task = start(sh, "8000.00")
    assert sh.js("tasks --as xu.ming", now=MON) == []  # another branch's manager
    sh.ok(f"act {only_task(sh, 'he.jing')} approve --as he.jing", now=MON)
    sh.ok(f"act {only_task(sh, 'feng.xue')} approve --as feng.xue", now=MON)
    assert sh.js(f"show {inst}", now=MON)["outcome"] == "approved"


def test_from_50000_the_finance_head_and_the_gm_countersign(sqlite_url: str) -> None:
    sh = cli(sqlite_url, "purchase_request", deployed_at=MON)
    inst, _ = start(sh, "50000.00")  # inclusive: exactly 50,000 needs the countersign
    sh.ok(f"act {only_task(sh, 'he.jing')} approve --as he.jing", now=MON)
    sh.ok(f"act {only_task(sh, 'deng.ping')} approve --as deng.ping", now=MON)
    both = only_task(sh, "guo.yan")
    assert only_task(sh, "lin.feng") == both
    sh.ok(f"act {both} approve --as lin.feng --comment 同意", now=MON)
    assert sh.js(f"show {inst}", now=MON)["status"] == "active"  # guo.yan still to sign
    sh.refused(f"act {both} approve --as lin.feng", "is assigned to guo.yan", now=MON)
    sh.ok(f"act {both} approve --as guo.yan", now=MON)
    shown = sh.js(f"show {inst}", now=MON)
    assert shown["outcome"] == "approved"
    assert [o["actor"] for o in shown["opinions"]][-2:] == ["lin.feng", "guo.yan"]


def test_sent_back_and_resubmitted_it_starts_again_at_the_manager(sqlite_url: str) -> None:
    sh = cli(sqlite_url, "purchase_request", deployed_at=MON)
    inst, _ = start(sh, "8000.00")
    sh.ok(f"act {only_task(sh, 'he.jing')} approve --as he.jing", now=MON)
    fin = only_task(sh, "deng.ping")
    sh.ok(f"rollback {fin} --to start --as deng.ping --comment 请附报价单", now=MON)
    sh.ok(
        f"act {only_task(sh, 'huang.tao')} resubmit --as huang.tao --set amount=90000.00",
        now=MON,
    )
    # the amount changed: the manager's approval of 8,000 does not stand for 90,000
    assert sh.js(f"show {inst}", now=MON)["state"] == "manager"
    sh.ok(f"act {only_task(sh, 'he.jing')} approve --as he.jing", now=MON)


def test_withdrawn_by_the_requester_only(sqlite_url: str) -> None:
    sh = cli(sqlite_url, "purchase_request", deployed_at=MON)
    inst, _ = start(sh, "8000.00")
    sh.refused(f"withdraw {inst} --as he.jing", "", now=MON)
    sh.ok(f"withdraw {inst} --as huang.tao --comment 不买了", now=MON)
    assert sh.js(f"show {inst}", now=MON)["status"] == "withdrawn"
    assert sh.js("tasks --as he.jing", now=MON) == []


def test_a_late_manager_is_joined_by_their_own_manager(sqlite_url: str) -> None:
    sh = cli(sqlite_url, "purchase_request", deployed_at=MON)
    _, task = start(sh, "8000.00")
    late = "2026-12-04T00:00:00+08:00"  # deadline end of Wed 2 Dec, +1 working day
    sh.ok("tick", now=late)
    assert [t["id"] for t in sh.js("tasks --as zhang.wei", now=late)] == [task]
    sh.ok(f"act {task} approve --as he.jing", now=late)  # the original may still decide
