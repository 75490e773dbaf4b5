"""加签 and 退回 through ``run.py``, on SQLite and PostgreSQL: each step atomic, audited and
notified; each refusal one line, exit 1, and nothing changed but a ``denied`` entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import Shell

ORG = """\
org: t
roles: {staff: {}, manager: {}, finance: {}, gm: {}}
users:
  amy: {name: Amy, roles: [staff], manager: mia}
  mia: {name: Mia, roles: [manager], manager: gao}
  fei: {name: Fei, roles: [finance], manager: gao}
  fan: {name: Fan, roles: [finance]}
  gao: {name: Gao, roles: [gm]}
  old: {name: Old, roles: [finance], active: false}
"""

PURCHASE = """\
process: purchase
title: Purchase request
four_eyes: true
variables:
  amount: {type: money, min: 0}
  item: {type: string}
start: {require: [amount, item], to: manager_review}
rollback: {resubmit: RESUBMIT}
states:
  manager_review:
    task:
      role: manager
      actions:
        approve: {to: finance_review}
        reject: {to: rejected, comment: required}
  finance_review:
    task:
      role: finance
      actions:
        approve: {to: approved}
        reject: {to: rejected}
  approved: {final: true, outcome: approved}
  rejected: {final: true, outcome: rejected}
"""

T0 = "2026-10-12T09:00:00+08:00"


def steps(n: int) -> str:
    return f"2026-10-12T09:{n:02d}:00+08:00"


def setup(db_url: str, tmp_path: Path, resubmit: str = "restart") -> tuple[Shell, str]:
    folder = tmp_path / "procs"
    folder.mkdir()
    (folder / "org.yaml").write_text(ORG, encoding="utf-8")
    (folder / "purchase.yaml").write_text(PURCHASE.replace("RESUBMIT", resubmit), encoding="utf-8")
    sh = Shell(db_url, folder)
    sh.ok("deploy", now=T0)
    inst = sh.js("start purchase --as amy --set amount=1200 --set item=laptop", now=steps(1))
    return sh, inst["id"]


def outbox(db_url: str, event: str) -> list[dict]:
    """The notices put in the outbox (the CLI lists deliveries, made only when sent)."""
    import sqlalchemy as sa

    from storage.db import open_database
    from storage.rows import json_out
    from storage.tables import outbox as table

    engine = open_database(db_url, create=False)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table).where(table.c.event == event).order_by(table.c.id))
            return [
                dict(r) | {"recipients": json_out(r["recipients"]), "data": json_out(r["data"])}
                for r in rows.mappings()
            ]
    finally:
        engine.dispose()


def unchanged_but_denied(sh: Shell, inst: str, before: dict, denials: int) -> None:
    after = sh.js(f"show {inst}")
    assert (after["state"], after["tasks"], after["variables"]) == (
        before["state"],
        before["tasks"],
        before["variables"],
    )
    assert len(sh.js(f"audit --instance {inst} --action denied")) == denials


def test_add_signer_before_then_back_to_the_adder(db_url: str, tmp_path: Path) -> None:
    sh, inst = setup(db_url, tmp_path)
    task = f"{inst}-1"
    shown = sh.js(
        f"add-signer {task} --users fei,fan --where before --mode all --as mia "
        "--comment 'finance should look first'",
        now=steps(2),
    )
    assert shown["state"] == "manager_review"
    assert sh.js("tasks --as fei")[0]["id"] == task and sh.js("tasks --as mia") == []
    [entry] = sh.js(f"audit --instance {inst} --action add_signer")
    assert entry["data"]["users"] == ["fei", "fan"] and entry["data"]["mode"] == "all"
    notices = outbox(db_url, "signer_added")
    assert {r for n in notices for r in n["recipients"]} >= {"user:fei", "user:fan"}
    sh.ok(f"act {task} approve --as fei", now=steps(3))
    sh.ok(f"act {task} approve --as fan", now=steps(4))
    assert [t["id"] for t in sh.js("tasks --as mia")] == [task]
    assert sh.js(f"act {task} approve --as mia", now=steps(5))["state"] == "finance_review"


def test_add_signer_refusals_change_nothing_but_the_audit(db_url: str, tmp_path: Path) -> None:
    sh, inst = setup(db_url, tmp_path)
    task = f"{inst}-1"
    before = sh.js(f"show {inst}")
    sh.refused(f"add-signer {task} --users amy --where before --as mia", "four-eyes rule")
    sh.refused(f"add-signer {task} --users mia --where after --as mia", "cannot add themselves")
    sh.refused(f"add-signer {task} --users old --where before --as mia", "has no delegate")
    sh.refused(f"add-signer {task} --users fei --where before --as fei", "needs role manager")
    sh.refused(f"add-signer {task} --users fei --where above --as mia", "--where 'above'")
    unchanged_but_denied(sh, inst, before, denials=4)  # --where is bad input, not a denial


def test_add_signer_after_and_parallel(db_url: str, tmp_path: Path) -> None:
    sh, inst = setup(db_url, tmp_path)
    task = f"{inst}-1"
    sh.ok(f"add-signer {task} --users gao --where after --as mia", now=steps(2))
    assert [t["id"] for t in sh.js("tasks --as gao")] == [task]
    assert sh.js(f"act {task} approve --as gao", now=steps(3))["state"] == "finance_review"
    fin = f"{inst}-2"
    # gao acted earlier: under four-eyes he may not sign again
    sh.refused(f"add-signer {fin} --users gao --where parallel --as fei", "already acted")
    sh.ok(f"add-signer {fin} --users fan --where parallel --as fei", now=steps(4))
    sh.ok(f"act {fin} approve --as fei", now=steps(5))
    assert sh.js(f"show {inst}")["state"] == "finance_review"
    assert sh.js(f"act {fin} approve --as fan", now=steps(6))["status"] == "completed"


def test_rollback_to_an_earlier_state_and_its_refusals(db_url: str, tmp_path: Path) -> None:
    sh, inst = setup(db_url, tmp_path)
    first = sh.js(f"show {inst}")
    sh.refused(
        f"rollback {inst}-1 --to finance_review --as mia --comment x",
        "this instance has never been there; choose one of: start",
    )
    unchanged_but_denied(sh, inst, first, denials=1)
    sh.ok(f"act {inst}-1 approve --as mia", now=steps(2))
    task = f"{inst}-2"
    before = sh.js(f"show {inst}")
    sh.refused(f"rollback {task} --to approved --as fei --comment x", "has no task")
    sh.refused(f"rollback {task} --to finance_review --as fei --comment x", "where it is now")
    sh.refused(f"rollback {task} --to manager_review --as fei", "--comment TEXT is required")
    sh.refused(f"rollback {task} --to manager_review --as mia --comment x", "needs role finance")
    unchanged_but_denied(sh, inst, before, denials=5)
    shown = sh.js(
        f"rollback {task} --to manager_review --as fei --comment 'attach the quote'",
        now=steps(3),
    )
    assert shown["state"] == "manager_review" and shown["tasks"][0]["id"] == f"{inst}-3"
    [sent] = outbox(db_url, "sent_back")
    assert sent["recipients"] == ["role:manager"]
    assert sent["data"]["comment"] == "attach the quote"
    # mia approved before; the send-back lets her decide again under four-eyes
    assert sh.js(f"act {inst}-3 approve --as mia", now=steps(4))["state"] == "finance_review"
    old = sh.js("tasks --all --process purchase")
    assert any(t["id"] == task and t["status"] == "cancelled" for t in old)


@pytest.mark.parametrize("mode", ["restart", "return"])
def test_rollback_to_the_requester_and_resubmit(db_url: str, tmp_path: Path, mode: str) -> None:
    sh, inst = setup(db_url, tmp_path, mode)
    sh.ok(f"act {inst}-1 approve --as mia", now=steps(2))
    sh.ok(f"rollback {inst}-2 --to start --as fei --comment 'too dear'", now=steps(3))
    assert [t["id"] for t in sh.js("tasks --as amy")] == [f"{inst}-3"]
    [sent] = outbox(db_url, "sent_back")
    assert sent["recipients"] == ["user:amy"] and sent["data"]["comment"] == "too dear"
    sh.refused(f"act {inst}-3 resubmit --as mia", "assigned to amy")
    shown = sh.js(f"act {inst}-3 resubmit --as amy --set amount=900", now=steps(4))
    assert shown["variables"]["amount"] == "900"
    assert shown["state"] == ("manager_review" if mode == "restart" else "finance_review")


BOARD = """\
process: board
title: Board countersign
start: {to: board}
states:
  board:
    deadline:
      hours: 4
      escalations:
        - reassign: {manager_of: approver}
    task:
      roles: [manager, finance]
      mode: all
      countersign: approve
      actions:
        approve: {to: approved}
        reject: {to: rejected}
  approved: {final: true}
  rejected: {final: true}
"""


def test_escalation_to_the_approvers_manager_keeps_the_signature(
    db_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "procs"
    folder.mkdir()
    (folder / "org.yaml").write_text(ORG, encoding="utf-8")
    (folder / "board.yaml").write_text(BOARD, encoding="utf-8")
    sh = Shell(db_url, folder)
    sh.ok("deploy", now=T0)
    inst = sh.js("start board --as amy", now=steps(1))["id"]
    task = f"{inst}-1"
    sh.ok(f"act {task} approve --as fei", now=steps(2))  # finance signs; manager is late
    assert sh.js("tick", now="2026-10-12T13:01:00+08:00")["fired"] >= 1
    [shown] = sh.js(f"show {inst}")["tasks"]
    assert shown["pending_roles"] == ["user:mia,gao"]  # mia, or her manager gao
    assert [(s["user"], s["role"]) for s in shown["signoffs"]] == [("fei", "finance")]
    [entry] = sh.js(f"audit --instance {inst} --action escalation")
    assert entry["data"]["reassigned_to"] == "user:gao"
    assert [t["id"] for t in sh.js("tasks --as gao")] == [task]
    done = sh.js(f"act {task} approve --as gao", now="2026-10-12T13:05:00+08:00")
    assert (done["status"], done["state"]) == ("completed", "approved")


def test_the_requester_withdraws_a_request_sent_back(db_url: str, tmp_path: Path) -> None:
    sh, inst = setup(db_url, tmp_path)
    sh.ok(f"rollback {inst}-1 --to start --as mia --comment 'not this quarter'", now=steps(2))
    sh.refused(f"act {inst}-2 approve --as amy", "sent back; choose: resubmit, withdraw")
    shown = sh.js(f"act {inst}-2 withdraw --as amy --comment ok", now=steps(3))
    assert (shown["status"], shown["tasks"]) == ("withdrawn", [])
    actions = [e["action"] for e in sh.js(f"audit --instance {inst}")]
    assert actions == ["start", "rollback", "denied", "withdraw"]
    assert sh.ok("audit --verify").code == 0
