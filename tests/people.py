"""A purchase request and an org with absent people, for the approval-operation tests
(withdraw, cc, transfer, remind, claim)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Appended to the shipped org: someone away with no delegate, someone away whose delegate
# is the requester of the tests (liu.yang), and a finance clerk away with a delegate.
ABSENT = """\
  old.hand: {name: Old Hand, roles: [finance], active: false}
  away.boss: {name: Away Boss, roles: [business_manager], active: false, delegate: liu.yang}
  away.clerk: {name: Away Clerk, roles: [finance], active: false, delegate: cao.yu}
  away.requester: {name: Away Requester, roles: [salesperson], active: false, delegate: huang.tao}
"""

PURCHASE = """\
process: purchase
title: Purchase request
four_eyes: true
owner_role: admin_center
confidential_to: [finance]
variables:
  amount: {type: money, min: 0}
  secret: {type: string, confidential: true}
  buyer: {type: user}
start: {require: [amount], accept: [secret, buyer], to: manager}
deadline: {working_days: 5, until: [approved, rejected]}
cc: [{role: internal_audit}]
states:
  manager:
    deadline: {working_days: 2, reminders: [{before: {hours: 4}}]}
    task:
      role: business_manager
      actions:
        approve: {to: finance}
        reject: {to: rejected}
  finance:
    cc: [{variable: buyer}]
    task:
      roles: [finance, cfo]
      mode: all
      countersign: approve
      actions:
        approve: {to: approved}
        reject: {to: rejected}
  approved: {final: true, outcome: approved}
  rejected: {final: true, outcome: rejected}
"""

# the same request where withdrawing is allowed only in the manager step, and only
# until someone other than the requester has acted
STRICT = (
    PURCHASE.replace("process: purchase", "process: strict")
    .replace("cc: [{role: internal_audit}]\n", "")
    .replace(
        "states:\n",
        "withdraw: {in_states: [manager], until_first_approval: true}\nstates:\n",
        1,
    )
)


def make_people(folder: Path) -> Path:
    """A processes folder: the shipped org plus ABSENT, and the two purchase processes."""
    folder.mkdir(parents=True, exist_ok=True)
    org = (ROOT / "processes" / "org.yaml").read_text(encoding="utf-8")
    (folder / "org.yaml").write_text(org.rstrip("\n") + "\n" + ABSENT, encoding="utf-8")
    (folder / "purchase.yaml").write_text(PURCHASE, encoding="utf-8")
    (folder / "strict.yaml").write_text(STRICT, encoding="utf-8")
    return folder


START = "2026-09-30T10:00:00+08:00"


def outbox(db_url: str) -> list[tuple[str, list[str], dict]]:
    """Every notice put in the outbox so far: (event, recipients, data), oldest first."""
    import json

    import sqlalchemy as sa

    from storage.store import Store

    store = Store.open(db_url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT event, recipients, data FROM outbox ORDER BY id")
            ).all()
    finally:
        store.close()
    decode = lambda v: v if not isinstance(v, str) else json.loads(v)  # noqa: E731
    return [(e, decode(r), decode(d)) for e, r, d in rows]


def refused_unchanged(sh, db_url: str, instance_id: str, command: str, match: str) -> None:  # noqa: ANN001
    """``command`` is refused with one line naming ``match``, and changes nothing but one
    ``denied`` audit entry: the instance, its tasks, timers and the outbox stay as they
    were."""
    before = sh.js(f"show {instance_id}", now=START)
    notices = outbox(db_url)
    sh.refused(command, match, now=START)
    after = sh.js(f"show {instance_id}", now=START)
    assert {k: v for k, v in after.items() if k != "history"} == {
        k: v for k, v in before.items() if k != "history"
    }
    assert after["history"][:-1] == before["history"]
    denied = after["history"][-1]
    assert denied["action"] == "denied" and match in denied["data"]["reason"], denied
    assert outbox(db_url) == notices
