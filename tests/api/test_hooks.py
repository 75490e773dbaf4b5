"""Inbound webhooks, signed with the official ``standardwebhooks`` library, against a real
uvicorn server and a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

from api.app import create_app
from api.hookconfig import load_hooks_text
from engine.errors import DefinitionError
from service.workflow import Workflow
from storage.tables import audit_log
from tests.api.live import (  # noqa: F401 (migrated_sqlite is a fixture)
    Clock,
    database,
    dump,
    make_processes,
    migrated_sqlite,
    new_secret,
    serve,
    sqlite_only,
)

ERP, ERP_NEW, BOT = new_secret(), new_secret(), new_secret()
HOOKS = """\
senders:
  erp:
    secrets: ["${ERP_OLD}", "${ERP_NEW}"]
    acts_for: [li.qiang, wang.fang]
    may_start: [errand]
  bot:
    secrets: ["${BOT}"]
    acts_for: [sun.li]
"""
ENV = {"ERP_OLD": ERP, "ERP_NEW": ERP_NEW, "BOT": BOT}


@dataclass
class World:
    wf: Workflow
    url: str
    clock: Clock
    task: str  # an open errand task for complaint_handler (li.qiang, sun.li, zhou.min)

    def dump(self) -> dict[str, list[str]]:
        return dump(self.wf.store.engine)


@pytest.fixture
def world(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    migrated_sqlite: Path,  # noqa: F811
) -> Iterator[World]:
    """The real app (create_app), its hooks.yaml in the processes folder, secrets in env."""
    procs = make_processes(tmp_path / "processes")
    (procs / "hooks.yaml").write_text(HOOKS, encoding="utf-8")
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SHENPI_HOOKS", raising=False)
    monkeypatch.delenv("SHENPI_PUBLIC_URL", raising=False)
    wf = Workflow.open(database(db_url, tmp_path, migrated_sqlite), procs, create=True)
    clock = Clock()
    wf.clock = clock
    wf.deploy()
    snapshot = wf.start("errand", "wang.fang", {"note": "buy paper"})
    try:
        with serve(lambda _url: create_app(wf)) as url:
            yield World(wf, url, clock, snapshot.tasks[0].id)
    finally:
        wf.store.close()


def signed(
    secrets: list[str], body: Any, msg_id: str, at: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and Standard Webhooks headers, signed by each secret (rotation: several)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    at = at or datetime.now(UTC)
    signatures = [Webhook(s).sign(msg_id, at, raw.decode()) for s in secrets]
    return raw, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }


def post(w: World, sender: str, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{w.url}/v1/hooks/{sender}", content=raw, headers=headers, timeout=10)


def decide(w: World, who: str = "li.qiang", action: str = "approve", **extra: Any) -> dict:
    return {"as": who, "task": w.task, "action": action} | extra


def test_a_signed_decision_is_taken_and_a_replay_answers_with_the_first_result(
    world: World,
) -> None:
    raw, headers = signed([ERP], decide(world, variables={"reason": "ok"}), "msg_1")
    first = post(world, "erp", raw, headers)
    assert first.status_code == 200, first.text
    assert first.json()["result"] == "decided"
    assert first.json()["by"] == "li.qiang"
    assert first.json()["instance"]["state"] == "done"
    task = world.wf.store.get_task(world.task)
    assert (task.status, task.decision, task.decided_by) == ("done", "approve", "li.qiang")
    before = world.dump()
    # the sender retries the same id later: a fresh timestamp and signature, same answer
    raw, headers = signed([ERP], decide(world, variables={"reason": "ok"}), "msg_1")
    again = post(world, "erp", raw, headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert world.dump() == before


@sqlite_only
def test_a_six_minute_old_delivery_is_refused_and_changes_nothing(world: World) -> None:
    before = world.dump()
    old = datetime.now(UTC) - timedelta(minutes=6)
    raw, headers = signed([ERP], decide(world), "msg_old", at=old)
    response = post(world, "erp", raw, headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/bad-signature")
    assert "www-authenticate" in response.headers
    assert world.dump() == before
    # four minutes old is within the tolerance
    recent = datetime.now(UTC) - timedelta(minutes=4)
    raw, headers = signed([ERP], decide(world), "msg_old", at=recent)
    assert post(world, "erp", raw, headers).status_code == 200


@sqlite_only
def test_a_tampered_body_is_refused_and_changes_nothing(world: World) -> None:
    before = world.dump()
    raw, headers = signed([ERP], decide(world), "msg_t")
    tampered = raw.replace(b"approve", b"reject_")
    assert post(world, "erp", tampered, headers).status_code == 401
    headers["webhook-signature"] = "v1,not base64!"
    assert post(world, "erp", raw, headers).status_code == 401
    headers["webhook-signature"] = "garbage"
    assert post(world, "erp", raw, headers).status_code == 401
    assert post(world, "erp", b"\xff\xfe", headers).status_code == 401
    del headers["webhook-signature"]
    assert post(world, "erp", raw, headers).status_code == 401
    assert world.dump() == before
    # a refused delivery keeps nothing: the genuine one with that id still acts
    raw, headers = signed([ERP], decide(world), "msg_t")
    assert post(world, "erp", raw, headers).json()["result"] == "decided"


@sqlite_only
def test_an_unknown_sender_gets_the_same_answer_as_a_bad_signature(world: World) -> None:
    before = world.dump()
    raw, headers = signed([ERP], decide(world), "msg_u")
    unknown = post(world, "nobody", raw, headers)
    wrong_key = post(world, "bot", raw, headers)  # bot exists, signed with erp's secret
    assert unknown.status_code == wrong_key.status_code == 401
    assert unknown.json() == wrong_key.json()
    assert world.dump() == before


@sqlite_only
def test_secret_rotation_accepts_either_secret_and_both_at_once(world: World) -> None:
    raw, headers = signed([ERP_NEW], decide(world, variables={"reason": "r"}), "msg_r1")
    assert post(world, "erp", raw, headers).status_code == 200
    other = world.wf.start("errand", "wang.fang", {"note": "more"}).tasks[0].id
    body = {"as": "li.qiang", "task": other, "action": "approve"}
    raw, headers = signed([ERP, ERP_NEW], body, "msg_r2")  # the sender signs with both
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert post(world, "erp", raw, headers).json()["result"] == "decided"
    # a secret that is not (or no longer) configured is refused
    raw, headers = signed([new_secret()], body, "msg_r3")
    assert post(world, "erp", raw, headers).status_code == 401


def test_a_user_the_sender_may_not_act_for_is_refused_and_changes_nothing(
    world: World,
) -> None:
    before = world.dump()
    # zhou.min holds the role, but erp may only act for li.qiang and wang.fang
    raw, headers = signed([ERP], decide(world, who="zhou.min"), "msg_f")
    response = post(world, "erp", raw, headers)
    assert response.status_code == 403
    assert response.json()["type"].endswith("/sender-not-allowed")
    assert "zhou.min" in response.json()["detail"]
    assert world.dump() == before


INVALID = [
    ({"task": "x-1", "action": "approve"}, "#/as"),
    ({"as": "li.qiang", "task": "x-1"}, "#/"),
    ({"as": "li.qiang", "task": "x-1", "action": "approve", "extra": 1}, "#/extra"),
    ({"as": "li.qiang", "task": "x-1", "action": "approve", "variables": []}, "#/variables"),
    ({"as": 5, "task": "x-1", "action": "approve"}, "#/as"),
]


@sqlite_only
def test_an_invalid_body_gets_422_with_a_pointer_and_changes_nothing(world: World) -> None:
    before = world.dump()
    for i, (body, pointer) in enumerate(INVALID):
        raw, headers = signed([ERP], body, f"msg_i{i}")
        response = post(world, "erp", raw, headers)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["pointer"] == pointer
    for i, raw in enumerate(
        [b"not json", b'{"as": "li.qiang", "as": "wang.fang"}', b"[1, 2]", b'{"a": NaN}']
    ):
        raw, headers = signed([ERP], raw, f"msg_j{i}")
        response = post(world, "erp", raw, headers)
        assert response.status_code == 422, raw
        assert response.json()["type"].endswith("/invalid-request")
    assert world.dump() == before


def test_an_already_decided_task_answers_200_with_who_decided_what(world: World) -> None:
    world.wf.act(world.task, "reject", "sun.li", comment="not needed")
    before = world.dump()
    raw, headers = signed([ERP], decide(world), "msg_a")
    response = post(world, "erp", raw, headers)
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == "already_decided"
    assert (body["decision"], body["decided_by"]) == ("reject", "sun.li")
    after = world.dump()
    assert after.pop("webhook_receipts") != before.pop("webhook_receipts")
    assert after == before  # only the receipt was added


@sqlite_only
def test_a_refused_action_is_403_and_recorded_as_denied_like_the_cli(world: World) -> None:
    # wang.fang (complaint clerk) may be acted for by erp but does not hold the role
    before = world.dump()
    raw, headers = signed([ERP], decide(world, who="wang.fang"), "msg_d")
    response = post(world, "erp", raw, headers)
    assert response.status_code == 403
    assert response.json()["type"].endswith("/action-not-allowed")
    after = world.dump()
    assert after.pop("audit_log") != before.pop("audit_log")  # the CLI's `denied` entry
    after.pop("audit_chains"), before.pop("audit_chains")
    assert after == before


@sqlite_only
def test_a_missing_comment_or_a_bad_value_changes_nothing(world: World) -> None:
    before = world.dump()
    raw, headers = signed([ERP], decide(world, action="reject"), "msg_c")
    assert post(world, "erp", raw, headers).status_code == 403  # comment required
    raw, headers = signed([ERP], decide(world, variables={"nope": "x"}), "msg_v")
    response = post(world, "erp", raw, headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"].startswith("#/variables/")
    for table in ("instances", "tasks", "timers", "outbox", "webhook_receipts"):
        assert world.dump()[table] == before[table]


@sqlite_only
def test_an_unknown_task_is_404(world: World) -> None:
    raw, headers = signed([ERP], {"as": "li.qiang", "task": "zz-1", "action": "a"}, "msg_n")
    assert post(world, "erp", raw, headers).status_code == 404


@sqlite_only
def test_a_sender_may_start_only_the_processes_it_lists(world: World) -> None:
    body = {"as": "wang.fang", "start": "errand", "variables": {"note": "from erp"}}
    raw, headers = signed([ERP], body, "msg_s1")
    started = post(world, "erp", raw, headers)
    assert started.status_code == 200, started.text
    instance = started.json()["instance"]
    assert world.wf.store.load_snapshot(instance["id"]).requester == "wang.fang"
    # the retry of the same delivery starts nothing new
    raw, headers = signed([ERP], body, "msg_s1")
    assert post(world, "erp", raw, headers).json()["instance"]["id"] == instance["id"]
    before = world.dump()
    body = {"as": "sun.li", "start": "errand", "variables": {"note": "x"}}
    raw, headers = signed([BOT], body, "msg_s2")
    response = post(world, "bot", raw, headers)
    assert response.status_code == 403
    assert response.json()["type"].endswith("/sender-not-allowed")
    assert world.dump() == before


# --------------------------------------------------------------------------- hooks.yaml


@sqlite_only
def test_hooks_yaml_problems_are_reported_with_their_positions(world: World) -> None:
    text = """\
senders:
  erp:
    secrets: ["whsec_c2VjcmV0"]
    acts_for: [li.qiang, ghost]
  bot:
    secrets: ["${MISSING}", "${NOTWHSEC}"]
    acts_for: []
    colour: blue
  Bad Name:
    secrets: ["${BOT}"]
    acts_for: [li.qiang]
"""
    env = {"NOTWHSEC": "plain", "BOT": BOT}
    with pytest.raises(DefinitionError) as caught:
        load_hooks_text(text, "hooks.yaml", env, world.wf.org)
    lines = str(caught.value).splitlines()
    assert any(
        ln.startswith("hooks.yaml:3:") and "never the secret itself" in ln for ln in lines
    ), lines
    assert any(ln.startswith("hooks.yaml:4:") and "'ghost'" in ln for ln in lines), lines
    assert any(ln.startswith("hooks.yaml:7:") for ln in lines), lines  # acts_for empty
    assert any(ln.startswith("hooks.yaml:8:") and "unknown key 'colour'" in ln for ln in lines)
    assert any(ln.startswith("hooks.yaml:9:") and "Bad Name" in ln for ln in lines), lines
    assert "c2VjcmV0" not in str(caught.value)


def test_hooks_yaml_secrets_come_from_env_and_files(tmp_path: Path) -> None:
    (tmp_path / "erp.key").write_text(ERP + "\n", encoding="utf-8")
    text = "senders:\n  erp:\n    secrets: ['file:erp.key']\n    acts_for: [li.qiang]\n"
    config = load_hooks_text(text, str(tmp_path / "hooks.yaml"), {})
    assert config.senders["erp"].secrets[0].get_secret_value() == ERP
    assert ERP not in repr(config)
    bad = "senders:\n  erp:\n    secrets: ['${K}']\n    acts_for: [li.qiang]\n"
    with pytest.raises(DefinitionError, match=r"hooks.yaml:3:\d+: .*whsec_"):
        load_hooks_text(bad, "hooks.yaml", {"K": "not-a-whsec"})


def test_receipts_are_kept_a_week_and_a_lost_claim_can_be_taken_over(db_url: str) -> None:
    from storage.hookreceipts import WebhookReceipts
    from storage.store import Store

    store = Store.open(db_url)
    try:
        receipts = WebhookReceipts(store)
        t0 = datetime(2026, 11, 27, 12, tzinfo=UTC)
        first = receipts.claim("erp", "m1", t0)
        assert first.verdict == "new" and first.received_at is not None
        assert receipts.claim("erp", "m1", t0 + timedelta(seconds=5)).verdict == "busy"
        assert receipts.claim("bot", "m1", t0).verdict == "new"  # ids are per sender
        later = receipts.claim("erp", "m1", t0 + receipts.lease + timedelta(seconds=1))
        assert later.verdict == "new" and later.received_at is not None
        assert not receipts.complete("erp", "m1", first.received_at, 200, {"a": 1})
        assert receipts.complete("erp", "m1", later.received_at, 200, {"a": 2})
        replay = receipts.claim("erp", "m1", t0 + timedelta(days=3))
        assert (replay.verdict, replay.body) == ("replay", {"a": 2})
        assert receipts.prune(t0 + timedelta(days=6)) == 0
        assert receipts.prune(t0 + timedelta(days=8)) == 2
        assert receipts.get("erp", "m1") is None
    finally:
        store.close()


def test_the_same_delivery_arriving_eight_times_at_once_acts_once(world: World) -> None:
    import threading

    raw, headers = signed([ERP], decide(world), "msg_burst")
    results: list[httpx.Response] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        barrier.wait()
        results.append(post(world, "erp", raw, headers))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status_code for r in results} <= {200, 409}
    first = [r for r in results if r.status_code == 200 and "idempotent-replayed" not in r.headers]
    assert len(first) == 1 and first[0].json()["result"] == "decided"
    for r in results:
        if r.status_code == 200:
            assert r.json() == first[0].json()
        else:
            assert r.json()["type"].endswith("/in-progress")
    task = world.wf.store.get_task(world.task)
    assert (task.decision, task.decided_by) == ("approve", "li.qiang")
    with world.wf.store.engine.connect() as conn:
        approvals = conn.execute(
            sa.select(sa.func.count()).select_from(audit_log).where(audit_log.c.action == "approve")
        ).scalar()
    assert approvals == 1
