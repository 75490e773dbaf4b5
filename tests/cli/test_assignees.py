"""Assignees through the CLI, on the shipped org chart: the requester's manager, the head
of finance and the GM above, resolved when each task opens and shown in the audit."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.cli.helpers import PROCESSES, Shell

PURCHASE = """
process: purchase_request
title: 采购申请 (purchase request)
four_eyes: true
if_none: manager_up
variables:
  amount: {type: money, min: 0}
start: {require: [amount], to: manager}
states:
  manager:
    task:
      assignees: [{manager: requester}]
      actions: {approve: {to: finance}, reject: {to: rejected, comment: required}}
  finance:
    task:
      assignees: [{head: finance}]
      actions: {approve: {to: by_amount}, reject: {to: rejected}}
  by_amount:
    route:
      - {when: "amount >= 50000", to: gm}
      - {to: approved}
  gm:
    task:
      assignees: [{manager: requester, up_to: {role: general_manager}}]
      actions: {approve: {to: approved}, reject: {to: rejected}}
  approved: {final: true, outcome: approved}
  rejected: {final: true, outcome: rejected}
"""

AT = "2026-10-12T09:00:00+08:00"


def folder(tmp_path: Path) -> Path:
    procs = tmp_path / "procs"
    shutil.copytree(PROCESSES, procs)
    (procs / "purchase_request.yaml").write_text(PURCHASE, encoding="utf-8")
    return procs


def test_a_purchase_request_follows_the_org_chart(db_url: str, tmp_path: Path) -> None:
    sh = Shell(db_url, folder(tmp_path))
    sh.ok("deploy", now=AT)
    inst = sh.js("start purchase_request --as liu.yang --set amount=80000", now=AT)["id"]
    task = f"{inst}-1"
    # liu.yang is in the north branch: its head xu.ming, and only he, has the task
    assert [t["id"] for t in sh.js("tasks --as xu.ming")] == [task]
    assert sh.js("tasks --as he.jing") == []
    sh.refused(f"act {task} approve --as he.jing", "is assigned to xu.ming")
    [entry] = sh.js(f"audit --instance {inst} --action start")
    assert entry["data"]["assigned"] == {
        "slots": [
            {
                "slot": "user:xu.ming",
                "reason": "manager of the requester: manager of liu.yang (head of sales_north)",
            }
        ]
    }
    sh.ok(f"act {task} approve --as xu.ming", now="2026-10-12T10:00:00+08:00")
    # the head of finance is guo.yan; then the GM, up liu.yang's reporting line
    assert [t["id"] for t in sh.js("tasks --as guo.yan")] == [f"{inst}-2"]
    sh.ok(f"act {inst}-2 approve --as guo.yan", now="2026-10-12T11:00:00+08:00")
    assert [t["id"] for t in sh.js("tasks --as lin.feng")] == [f"{inst}-3"]
    sh.ok(f"act {inst}-3 approve --as lin.feng", now="2026-10-12T12:00:00+08:00")
    assert sh.js(f"show {inst}")["outcome"] == "approved"


def test_the_users_listing_shows_departments_and_managers(db_url: str) -> None:
    rows = {r["id"]: r for r in Shell(db_url).js("users --limit 100")}
    assert rows["liu.yang"]["departments"] == ["sales_north"]
    assert rows["liu.yang"]["manager"] == "xu.ming"
    assert rows["ma.hui"]["manager"] == "qian.hua"  # set explicitly
    assert rows["lin.feng"]["manager"] is None and rows["du.wen"]["departments"] == []


def test_validate_names_an_unknown_department_with_its_place(db_url: str, tmp_path: Path) -> None:
    procs = folder(tmp_path)
    path = procs / "purchase_request.yaml"
    path.write_text(PURCHASE.replace("{head: finance}", "{head: treasury}"), encoding="utf-8")
    res = Shell(db_url, procs)(["validate", str(procs)])
    assert res.code == 1
    assert "purchase_request.yaml:16:20: unknown department 'treasury'" in res.out + res.err
    assert "unknown department 'treasury'" in res.out + res.err


def test_a_dated_delegate_gets_the_task_only_on_those_days(db_url: str, tmp_path: Path) -> None:
    procs = folder(tmp_path)
    org = procs / "org.yaml"
    text = org.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("  guo.yan:"))
    away = line.replace(
        "department: finance,",
        "department: finance, active: false,"
        " delegate: {to: deng.ping, from: 2026-10-12, until: 2026-10-16},",
    )
    assert away != line
    org.write_text(text.replace(line, away), encoding="utf-8")
    sh = Shell(db_url, procs)
    sh.ok("deploy", now=AT)
    finance_tasks = []
    for day in ("2026-10-16", "2026-10-17"):  # the last day of the absence, and the next
        at = f"{day}T09:00:00+08:00"
        inst = sh.js("start purchase_request --as liu.yang --set amount=100", now=at)["id"]
        sh.ok(f"act {inst}-1 approve --as xu.ming", now=f"{day}T09:30:00+08:00")
        finance_tasks.append(f"{inst}-2")
    inside, outside = finance_tasks
    # on the 16th deng.ping stands in for the head of finance; on the 17th nobody does, and
    # the process's manager_up gives the task to guo.yan's manager
    assert [t["id"] for t in sh.js("tasks --as deng.ping")] == [inside]
    assert [t["id"] for t in sh.js("tasks --as lin.feng")] == [outside]
    instance = outside.rsplit("-", 1)[0]
    [entry] = sh.js(f"audit --instance {instance} --action approve")
    [slot] = entry["data"]["assigned"]["slots"]
    assert slot["slot"] == "user:lin.feng"
    assert (
        "guo.yan is away and their delegation to deng.ping (from 2026-10-12 until "
        in (slot["reason"])
    )
    assert slot["reason"].endswith(
        "does not cover this day; nobody found; next manager up: lin.feng"
    )


CFO_SIGNS = """
process: cfo_signs
title: CFO signs
variables:
  amount: {type: money, min: 0}
start: {require: [amount], to: cfo}
states:
  cfo:
    task:
      role: cfo
      actions: {approve: {to: done}}
  done: {final: true}
"""


def test_a_dated_stand_in_lists_the_absentees_role_tasks_only_on_those_days(
    db_url: str, tmp_path: Path
) -> None:
    """A role task waits for the role; the head of finance's stand-in finds it in their
    list while the delegation's days last, and no longer after them, when acting on it
    is refused as well: the list shows what one may act on."""
    procs = folder(tmp_path)
    (procs / "cfo_signs.yaml").write_text(CFO_SIGNS, encoding="utf-8")
    org = procs / "org.yaml"
    text = org.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("  guo.yan:"))
    away = line.replace(
        "department: finance,",
        "department: finance, active: false,"
        " delegate: {to: deng.ping, from: 2026-10-12, until: 2026-10-16},",
    )
    org.write_text(text.replace(line, away), encoding="utf-8")
    sh = Shell(db_url, procs)
    sh.ok("deploy", now=AT)
    inst = sh.js("start cfo_signs --as liu.yang --set amount=100", now="2026-10-14T09:00:00+08:00")
    task = inst["tasks"][0]["id"]
    during, after = "2026-10-16T10:00:00+08:00", "2026-10-19T10:00:00+08:00"
    assert [t["id"] for t in sh.js("tasks --as deng.ping", now=during)] == [task]
    assert sh.js("tasks --as deng.ping", now=after) == []
    sh.refused(f"act {task} approve --as deng.ping", "needs role cfo", now=after)
    sh.ok(f"act {task} approve --as deng.ping", now=during)


def test_the_graph_names_who_each_task_goes_to(db_url: str, tmp_path: Path) -> None:
    out = Shell(db_url, folder(tmp_path)).ok("graph purchase_request").out
    assert "manager --> finance: approve (manager of the requester)" in out
    assert "finance --> by_amount: approve (head of finance)" in out
    assert "gm --> approved: approve (manager of the requester up to general_manager)" in out
