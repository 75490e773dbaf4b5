"""Idempotency-Key on POST, against the real app (create_app) on a real uvicorn server and
database: replay after completion, 422 for another payload, 409 while the first runs,
per-caller scopes, refusals that keep nothing, and keys that survive a restart."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.idempotency import fingerprint, parse_key
from service.tokens import revoke_token
from service.workflow import Workflow
from storage.idempotency import IdempotencyKeys
from storage.store import Store
from tests.api.conftest import Api
from tests.api.live import serve, sqlite_only

START = {"process": "spend", "variables": {"amount": "100.00", "reason": "pens", "salary": "1"}}


def count(api: Api, table: str) -> int:
    with api.wf.store.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() or 0)


def start(
    api: Api, key: str | bytes | None, user: str = "liu.yang", body: Any = None
) -> httpx.Response:
    headers: dict[str, Any] = {"Idempotency-Key": key} if key is not None else {}
    if isinstance(body, bytes):
        headers["Content-Type"] = "application/json"
        return api.post("/v1/instances", user, content=body, headers=headers)
    return api.post("/v1/instances", user, json=body or START, headers=headers)


def test_a_retry_after_completion_replays_the_stored_result(api: Api) -> None:
    first = start(api, "k-1")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    # the same request, written differently (key order, spacing): the same request
    same = json.dumps({"variables": START["variables"], "process": "spend"}, indent=2).encode()
    again = start(api, '"k-1"', body=same)  # as an RFC 8941 string, too
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert count(api, "instances") == 1


@sqlite_only
def test_the_same_key_with_another_payload_is_422_and_changes_nothing(api: Api) -> None:
    assert start(api, "k-2").status_code == 201
    before = api.fingerprint()
    other = START | {"variables": START["variables"] | {"amount": "999.00"}}
    response = start(api, "k-2", body=other)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/idempotency-key-reused")
    assert api.fingerprint() == before
    # a number written as text is another payload too
    textual = json.dumps(START).replace('"100.00"', "100.00").encode()
    assert start(api, "k-2", body=textual).status_code == 422


@sqlite_only
def test_a_duplicate_while_the_first_still_runs_is_409(api: Api) -> None:
    token = api.token("liu.yang")
    token_id = token.split("_")[1]
    raw = json.dumps(START).encode()
    # the first request holds the key (it is running): claimed as the server claims it
    keys = IdempotencyKeys(api.wf.store)
    held = keys.claim(
        f"token:{token_id}", "k-3", fingerprint("POST", "/v1/instances", "", raw), api.wf.clock()
    )
    assert held.verdict == "new"
    before = api.fingerprint()
    response = start(api, "k-3", body=raw)
    assert response.status_code == 409
    assert response.json()["type"].endswith("/in-progress")
    assert response.headers["retry-after"] == "1"
    assert api.fingerprint() == before


def test_concurrent_duplicates_decide_once(api: Api) -> None:
    instance = start(api, None).json()
    task_id = instance["tasks"][0]["id"]
    headers = api.auth("deng.ping") | {"Idempotency-Key": "decide-1"}
    body = {"action": "approve", "variables": {"note": "ok"}}
    results: list[httpx.Response] = []
    barrier = threading.Barrier(8)

    def decide() -> None:
        barrier.wait()
        results.append(
            httpx.post(
                f"{api.base}/v1/tasks/{task_id}/decision", json=body, headers=headers, timeout=30
            )
        )

    threads = [threading.Thread(target=decide) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {200, 409}, [r.text for r in results if r.status_code not in (200, 409)]
    fresh = [r for r in results if r.status_code == 200 and "idempotent-replayed" not in r.headers]
    assert len(fresh) == 1
    for r in results:
        if r.status_code == 409:
            assert r.json()["type"].endswith("/in-progress")
    with api.wf.store.engine.connect() as conn:
        decided = conn.execute(
            sa.text("SELECT count(*) FROM audit_log WHERE action = 'approve'")
        ).scalar()
    assert decided == 1
    # once done, a late duplicate is a replay
    late = httpx.post(
        f"{api.base}/v1/tasks/{task_id}/decision", json=body, headers=headers, timeout=30
    )
    assert late.status_code == 200 and late.headers["idempotent-replayed"] == "true"


@sqlite_only
def test_keys_belong_to_their_caller(api: Api) -> None:
    mine = start(api, "shared", user="liu.yang")
    theirs = start(api, "shared", user="huang.tao")
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers


@sqlite_only
def test_a_refusal_keeps_nothing_so_a_corrected_retry_runs(api: Api) -> None:
    bad = START | {"variables": START["variables"] | {"amount": "lots"}}
    before = api.fingerprint()
    refused = start(api, "k-4", body=bad)
    assert refused.status_code == 422
    assert api.fingerprint() == before
    assert count(api, "idempotency_keys") == 0
    fixed = start(api, "k-4")
    assert fixed.status_code == 201 and "idempotent-replayed" not in fixed.headers


@sqlite_only
def test_a_revoked_token_gets_no_replay(api: Api) -> None:
    token = api.token("liu.yang")
    assert start(api, "k-5").status_code == 201
    revoke_token(api.wf, token.split("_")[1], datetime.now(UTC))
    assert start(api, "k-5").status_code == 401


@sqlite_only
def test_a_malformed_key_is_400_and_changes_nothing(api: Api) -> None:
    before = api.fingerprint()
    for key in ['""', "", "x" * 256, "ключ".encode(), '"unterminated', '"a"b"']:
        response = start(api, key)
        assert response.status_code == 400, key
        assert "Idempotency-Key" in response.json()["detail"]
    assert api.fingerprint() == before


@sqlite_only
def test_a_stored_result_survives_a_restart(api: Api) -> None:
    first = start(api, "k-6")
    assert first.status_code == 201
    url = str(api.wf.store.engine.url.render_as_string(hide_password=False))
    other = Workflow.open(url, api.wf.processes_dir)
    try:
        with serve(lambda _base: create_app(other)) as base:
            again = httpx.post(
                f"{base}/v1/instances",
                json=START,
                headers=api.auth("liu.yang") | {"Idempotency-Key": "k-6"},
                timeout=30,
            )
    finally:
        other.store.close()
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


def test_parse_key_reads_sf_strings_and_bare_tokens() -> None:
    assert parse_key("abc") == "abc"
    assert parse_key('"a\\"b\\\\c"') == 'a"b\\c'
    for bad in ('"a\\nb"', '"', "\x7f", "a\tb"):
        with pytest.raises(ValueError, match="key"):
            parse_key(bad)


# --------------------------------------------------------------------------- storage


@pytest.fixture
def keys(db_url: str) -> Iterator[IdempotencyKeys]:
    store = Store.open(db_url)
    try:
        yield IdempotencyKeys(store)
    finally:
        store.close()


def test_keys_expire_after_a_day_and_are_pruned(keys: IdempotencyKeys) -> None:
    t0 = datetime(2026, 11, 27, 12, tzinfo=UTC)
    claim = keys.claim("s", "k", "f1", t0)
    assert claim.verdict == "new" and claim.claimed_at is not None
    assert keys.complete("s", "k", claim.claimed_at, 201, {"location": "/x"}, b"{}")
    assert keys.claim("s", "k", "f1", t0 + timedelta(hours=23)).verdict == "replay"
    # a day later the key is new again, even before it was pruned
    assert keys.claim("s", "k", "f2", t0 + timedelta(hours=24)).verdict == "new"
    assert keys.prune(t0 + timedelta(hours=47)) == 0
    assert keys.prune(t0 + timedelta(hours=48)) == 1
    assert keys.get("s", "k") is None


def test_a_claim_whose_holder_died_can_be_taken_over(keys: IdempotencyKeys) -> None:
    t0 = datetime(2026, 11, 27, 12, tzinfo=UTC)
    first = keys.claim("s", "k", "f", t0)
    assert keys.claim("s", "k", "f", t0 + timedelta(seconds=30)).verdict == "busy"
    second = keys.claim("s", "k", "f", t0 + keys.lease + timedelta(seconds=1))
    assert second.verdict == "new"
    assert first.claimed_at is not None and second.claimed_at is not None
    # the first holder, back from the dead, can no longer store its answer
    assert not keys.complete("s", "k", first.claimed_at, 200, {}, b"late")
    assert keys.complete("s", "k", second.claimed_at, 200, {}, b"ok")
    assert keys.claim("s", "k", "f", t0 + timedelta(minutes=5)).body == b"ok"


def test_migration_0009_adds_and_removes_only_its_three_tables(db_url: str) -> None:
    from alembic import command

    from storage.db import alembic_config, open_database

    mine = {"webhook_receipts", "action_links", "idempotency_keys"}
    engine = open_database(db_url)
    try:
        with engine.begin() as conn:
            before = set(sa.inspect(conn).get_table_names())
            assert mine <= before
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0009")  # later migrations' tables go first
            at_0009 = set(sa.inspect(conn).get_table_names())
            command.downgrade(config, "0008")
            assert set(sa.inspect(conn).get_table_names()) == at_0009 - mine
            command.upgrade(config, "head")
            assert set(sa.inspect(conn).get_table_names()) == before
    finally:
        engine.dispose()
