"""The approval operations over HTTP (issue 9 through issue 11's API): each endpoint's
success and its refusals, and that a refusal changes nothing (or only adds the ``denied``
audit entry the CLI records too). SQLite, a real uvicorn server; one PostgreSQL case."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api, run_server

PROBLEM = "application/problem+json"
TYPE = "https://shenpi.dev/problems/"


# two task states, to send back from the second to the first
BUY = """\
process: buy
title: Purchase
four_eyes: true
variables:
  amount: {type: money}
start: {to: check, accept: [amount]}
states:
  check:
    title: Finance check
    task:
      role: finance
      actions:
        approve: {to: sign}
  sign:
    title: CFO sign-off
    task:
      role: cfo
      actions:
        approve: {to: done}
        reject: {to: done, comment: required}
  done: {final: true}
"""


@pytest.fixture
def lite(sqlite_url: str, api_procs: Path) -> Iterator[Api]:
    """The server on SQLite only: the PostgreSQL case is below, one test."""
    (api_procs / "buy.yaml").write_text(BUY, encoding="utf-8")
    for base, wf in run_server(sqlite_url, api_procs):
        with httpx.Client(base_url=base, timeout=30) as http:
            yield Api(base, wf, http)


def refused(
    api: Api, before: dict[str, Any], res: httpx.Response, status: int, kind: str
) -> dict[str, Any]:
    """``res`` is the problem ``kind`` and the database is exactly as ``before``."""
    assert res.status_code == status, res.text
    assert res.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = res.json()
    assert problem["type"] == TYPE + kind, problem
    assert api.fingerprint() == before
    return problem


def denied(
    api: Api, before: dict[str, Any], res: httpx.Response, status: int, kind: str
) -> dict[str, Any]:
    """Refused by the engine: the only change is one ``denied`` audit entry (the CLI's
    contract for a refused action on an open task or instance)."""
    after = api.fingerprint()
    assert after["audit"] == before["audit"] + 1, res.text
    return refused(api, before | {"audit": after["audit"]}, res, status, kind)


def actions(api: Api, instance_id: str) -> list[str]:
    return [
        h["action"] for h in api.get(f"/v1/instances/{instance_id}", "cao.yu").json()["history"]
    ]


# --------------------------------------------------------------------------- withdraw


def test_the_requester_withdraws_and_others_may_not(lite: Api) -> None:
    inst = lite.start()
    path = f"/v1/instances/{inst['id']}/withdraw"
    before = lite.fingerprint()
    problem = denied(lite, before, lite.post(path, "deng.ping", json={}), 403, "action-not-allowed")
    assert "only the requester (liu.yang)" in problem["detail"]

    res = lite.post(path, "liu.yang", json={"comment": "bought it myself"})
    assert res.status_code == 200, res.text
    body = res.json()
    assert (body["status"], body["outcome"], body["tasks"]) == ("withdrawn", "withdrawn", [])
    assert body["history"][-1]["action"] == "withdraw"
    assert body["history"][-1]["data"]["comment"] == "bought it myself"
    task = lite.get(f"/v1/tasks/{inst['tasks'][0]['id']}", "liu.yang").json()
    assert (task["status"], task["decision"]) == ("cancelled", "withdrawn")

    # a second time: the request is no longer active, 409 saying how it ended
    before = lite.fingerprint()
    problem = denied(lite, before, lite.post(path, "liu.yang"), 409, "instance-already-decided")
    assert (problem["instance_status"], problem["outcome"]) == ("withdrawn", "withdrawn")


def test_withdraw_needs_no_body_and_refuses_bad_ones(lite: Api) -> None:
    inst = lite.start()
    path = f"/v1/instances/{inst['id']}/withdraw"
    before = lite.fingerprint()
    res = lite.post(path, "liu.yang", json={"comment": "x", "extra": 1})
    assert refused(lite, before, res, 422, "invalid-request")["errors"][0]["pointer"] == "#/extra"
    res = lite.post(path, "liu.yang", json={"comment": 5})
    refused(lite, before, res, 422, "invalid-request")
    res = lite.post(
        path, "liu.yang", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    refused(lite, before, res, 400, "malformed-request")
    refused(lite, before, lite.post("/v1/instances/nope/withdraw", "liu.yang"), 404, "not-found")
    assert lite.post(path, "liu.yang").json()["status"] == "withdrawn"  # no body at all


# --------------------------------------------------------------------------- cc


def test_cc_copies_the_request_and_the_reader_sees_it_masked(lite: Api) -> None:
    inst = lite.start()
    path = f"/v1/instances/{inst['id']}/cc"
    res = lite.post(path, "liu.yang", json={"to": ["peng.lv"], "comment": "fyi"})
    assert res.status_code == 200, res.text
    assert res.json()["history"][-1]["action"] == "cc"
    seen = lite.get(f"/v1/instances/{inst['id']}", "peng.lv")
    assert seen.status_code == 200, seen.text
    assert seen.json()["variables"]["salary"] == "***"

    before = lite.fingerprint()
    res = lite.post(path, "liu.yang", json={"to": ["peng.lv"]})
    assert "already receive" in denied(lite, before, res, 403, "action-not-allowed")["detail"]
    before = lite.fingerprint()
    res = lite.post(path, "liu.yang", json={"to": ["no.body"]})
    assert (
        "unknown user 'no.body'" in denied(lite, before, res, 403, "action-not-allowed")["detail"]
    )
    before = lite.fingerprint()
    for bad in ({"to": []}, {}, {"to": "peng.lv"}, {"to": ["a\nb"]}):
        refused(lite, before, lite.post(path, "liu.yang", json=bad), 422, "invalid-request")
    refused(
        lite,
        before,
        lite.post("/v1/instances/x/cc", "liu.yang", json={"to": ["peng.lv"]}),
        404,
        "not-found",
    )


# --------------------------------------------------------------------------- transfer


def test_transfer_gives_the_task_to_one_person(lite: Api) -> None:
    inst = lite.start()
    task_id = inst["tasks"][0]["id"]
    path = f"/v1/tasks/{task_id}/transfer"
    res = lite.post(path, "deng.ping", json={"to": "guo.yan", "comment": "the CFO knows"})
    assert res.status_code == 200, res.text
    assert res.json()["history"][-1]["action"] == "transfer"
    assert [t["id"] for t in lite.get("/v1/tasks", "guo.yan").json()["items"]] == [task_id]
    assert lite.get("/v1/tasks", "feng.xue").json()["items"] == []

    before = lite.fingerprint()
    # the requester under four-eyes, and someone with no turn on it
    res = lite.post(path, "guo.yan", json={"to": "liu.yang", "comment": "you do it"})
    assert "four-eyes" in denied(lite, before, res, 403, "action-not-allowed")["detail"]
    before = lite.fingerprint()
    res = lite.post(path, "feng.xue", json={"to": "deng.ping", "comment": "mine now"})
    denied(lite, before, res, 403, "action-not-allowed")
    before = lite.fingerprint()
    for bad in ({"to": "deng.ping"}, {"to": "deng.ping", "comment": ""}, {"comment": "why"}):
        refused(lite, before, lite.post(path, "guo.yan", json=bad), 422, "invalid-request")
    res = lite.post(
        "/v1/tasks/nope-1/transfer", "guo.yan", json={"to": "deng.ping", "comment": "x"}
    )
    refused(lite, before, res, 404, "not-found")

    assert lite.post(
        f"/v1/tasks/{task_id}/decision", "guo.yan", json={"action": "approve"}
    ).is_success
    before = lite.fingerprint()
    res = lite.post(path, "guo.yan", json={"to": "deng.ping", "comment": "too late"})
    problem = refused(lite, before, res, 409, "task-already-decided")
    assert problem["decided_by"] == "guo.yan"


# --------------------------------------------------------------------------- remind


def test_remind_once_an_hour_then_429_with_retry_after(lite: Api) -> None:
    inst = lite.start()
    path = f"/v1/tasks/{inst['tasks'][0]['id']}/remind"
    before = lite.fingerprint()
    res = lite.post(path, "deng.ping")  # an approver does not chase the others
    denied(lite, before, res, 403, "action-not-allowed")

    res = lite.post(path, "liu.yang", json={"comment": "needed by Friday"})
    assert res.status_code == 200, res.text
    assert res.json()["history"][-1]["action"] == "remind"

    before = lite.fingerprint()
    problem = denied(lite, before, lite.post(path, "liu.yang"), 429, "too-soon")
    res_wait = int(problem["retry_after"])
    assert 3500 <= res_wait <= 3600 and "try again in 60 min" in problem["detail"]
    again = lite.post(path, "liu.yang")
    assert 3500 <= int(again.headers["Retry-After"]) <= 3600
    assert actions(lite, inst["id"])[-3:] == ["remind", "denied", "denied"]


def test_a_retried_reminder_with_its_idempotency_key_is_replayed_not_refused(lite: Api) -> None:
    """The operations honour Idempotency-Key like every POST: the retry of a reminder
    whose answer was lost gets that answer, not a 429, and nobody is reminded twice."""
    inst = lite.start()
    path = f"/v1/tasks/{inst['tasks'][0]['id']}/remind"
    key = {"Idempotency-Key": "remind-once"}
    first = lite.post(path, "liu.yang", json={"comment": "Friday"}, headers=key)
    assert first.status_code == 200, first.text
    before = lite.fingerprint()
    again = lite.post(path, "liu.yang", json={"comment": "Friday"}, headers=key)
    assert (again.status_code, again.json()) == (200, first.json())
    assert lite.fingerprint() == before
    assert lite.post(path, "liu.yang", json={"comment": "Friday"}).status_code == 429


# --------------------------------------------------------------------------- claim


def test_claim_and_unclaim_a_role_task(lite: Api) -> None:
    inst = lite.start()
    task_id = inst["tasks"][0]["id"]
    res = lite.post(f"/v1/tasks/{task_id}/claim", "deng.ping")
    assert res.status_code == 200, res.text
    assert res.json()["tasks"][0]["claimed_by"] == "deng.ping"
    assert lite.get("/v1/tasks", "feng.xue").json()["items"] == []

    before = lite.fingerprint()
    res = lite.post(f"/v1/tasks/{task_id}/claim", "feng.xue")
    assert (
        "deng.ping has claimed it" in denied(lite, before, res, 403, "action-not-allowed")["detail"]
    )
    before = lite.fingerprint()
    res = lite.post(f"/v1/tasks/{task_id}/unclaim", "feng.xue")
    denied(lite, before, res, 403, "action-not-allowed")
    before = lite.fingerprint()
    res = lite.post(f"/v1/tasks/{task_id}/claim", "liu.yang", headers={"Authorization": "Bearer x"})
    refused(lite, before, res, 401, "unauthorized")
    res = lite.http.post(
        f"/v1/tasks/{task_id}/claim", headers=lite.auth("feng.xue", "read")
    )  # a read-only token
    refused(lite, before, res, 403, "forbidden")
    refused(lite, before, lite.post("/v1/tasks/nope-1/claim", "feng.xue"), 404, "not-found")

    res = lite.post(f"/v1/tasks/{task_id}/unclaim", "deng.ping")
    assert res.status_code == 200, res.text
    assert "claimed_by" not in res.json()["tasks"][0] or not res.json()["tasks"][0]["claimed_by"]
    assert [t["id"] for t in lite.get("/v1/tasks", "feng.xue").json()["items"]] == [task_id]

    assert lite.post(
        f"/v1/tasks/{task_id}/decision", "feng.xue", json={"action": "approve"}
    ).is_success
    before = lite.fingerprint()
    problem = refused(
        lite,
        before,
        lite.post(f"/v1/tasks/{task_id}/claim", "deng.ping"),
        409,
        "task-already-decided",
    )
    assert problem["decided_by"] == "feng.xue"


# --------------------------------------------------------------------------- add-signer


def test_add_signer_before_me_then_it_comes_back(lite: Api) -> None:
    task_id = lite.start()["tasks"][0]["id"]
    path = f"/v1/tasks/{task_id}/add-signer"
    before = lite.fingerprint()
    for bad in (
        {"users": ["guo.yan"]},  # where is required
        {"users": [], "where": "before"},
        {"users": ["guo.yan"], "where": "beside"},
        {"users": ["guo.yan"], "where": "before", "mode": "most"},
    ):
        refused(lite, before, lite.post(path, "deng.ping", json=bad), 422, "invalid-request")
    res = lite.post(path, "deng.ping", json={"users": ["liu.yang"], "where": "before"})
    assert "four-eyes" in denied(lite, before, res, 403, "action-not-allowed")["detail"]
    before = lite.fingerprint()
    res = lite.post(path, "lin.feng", json={"users": ["guo.yan"], "where": "before"})
    denied(lite, before, res, 403, "action-not-allowed")  # the task does not await lin.feng
    before = lite.fingerprint()
    res = lite.post(
        "/v1/tasks/nope-1/add-signer", "deng.ping", json={"users": ["guo.yan"], "where": "before"}
    )
    refused(lite, before, res, 404, "not-found")

    res = lite.post(
        path, "deng.ping", json={"users": ["guo.yan"], "where": "before", "comment": "CFO first"}
    )
    assert res.status_code == 200, res.text
    assert res.json()["history"][-1]["action"] == "add_signer"
    assert [t["id"] for t in lite.get("/v1/tasks", "guo.yan").json()["items"]] == [task_id]
    res = lite.post(f"/v1/tasks/{task_id}/decision", "guo.yan", json={"action": "approve"})
    assert res.status_code == 200 and res.json()["state"] == "review", res.text
    assert [t["id"] for t in lite.get("/v1/tasks", "deng.ping").json()["items"]] == [task_id]


# --------------------------------------------------------------------------- rollback


def test_rollback_to_a_state_visited_and_refusals(lite: Api) -> None:
    res = lite.post(
        "/v1/instances", "liu.yang", json={"process": "buy", "variables": {"amount": "80"}}
    )
    inst = res.json()
    first = inst["tasks"][0]["id"]
    assert lite.post(
        f"/v1/tasks/{first}/decision", "deng.ping", json={"action": "approve"}
    ).is_success
    sign = lite.get(f"/v1/instances/{inst['id']}", "liu.yang").json()["tasks"][0]["id"]
    path = f"/v1/tasks/{sign}/rollback"

    before = lite.fingerprint()
    for bad in ({"to": "check"}, {"to": "check", "comment": ""}, {"comment": "why"}):
        refused(lite, before, lite.post(path, "guo.yan", json=bad), 422, "invalid-request")
    res = lite.post(path, "guo.yan", json={"to": "done", "comment": "again"})
    assert "check" in denied(lite, before, res, 403, "action-not-allowed")["detail"]
    before = lite.fingerprint()
    res = lite.post(path, "deng.ping", json={"to": "check", "comment": "mine"})
    denied(lite, before, res, 403, "action-not-allowed")  # not a cfo

    res = lite.post(path, "guo.yan", json={"to": "check", "comment": "attach the quote"})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["state"] == "check" and body["history"][-1]["action"] == "rollback"
    assert [t["state"] for t in body["tasks"]] == ["check"]
    before = lite.fingerprint()
    res = lite.post(path, "guo.yan", json={"to": "check", "comment": "twice"})
    assert refused(lite, before, res, 409, "task-already-decided")["decided_by"] == "guo.yan"

    # to the requester, who resubmits with the decision endpoint
    again = body["tasks"][0]["id"]
    res = lite.post(
        f"/v1/tasks/{again}/rollback", "feng.xue", json={"to": "start", "comment": "split it"}
    )
    assert res.status_code == 200, res.text
    mine = res.json()["tasks"][0]
    res = lite.post(f"/v1/tasks/{mine['id']}/decision", "liu.yang", json={"action": "resubmit"})
    assert res.status_code == 200 and res.json()["state"] == "check", res.text


# --------------------------------------------------------------------------- batch


def test_batch_decides_each_task_and_reports_each_refusal(lite: Api) -> None:
    a, b, c = (lite.start()["tasks"][0]["id"] for _ in range(3))
    mine = lite.start(user="deng.ping")["tasks"][0]["id"]  # four-eyes for deng.ping
    assert lite.post(f"/v1/tasks/{c}/decision", "feng.xue", json={"action": "approve"}).is_success

    before = lite.fingerprint()
    for bad in (
        {"task_ids": [], "action": "approve"},
        {"task_ids": [a]},
        {"task_ids": [a, a], "action": "approve"},
        {"task_ids": [a], "action": "approve", "extra": True},
    ):
        refused(
            lite,
            before,
            lite.post("/v1/tasks/batch", "deng.ping", json=bad),
            422,
            "invalid-request",
        )
    res = lite.post(
        "/v1/tasks/batch",
        "deng.ping",
        json={"task_ids": [a], "action": "approve"},
        headers={"Authorization": "Bearer nope"},
    )
    refused(lite, before, res, 401, "unauthorized")

    res = lite.post(
        "/v1/tasks/batch",
        "deng.ping",
        json={"task_ids": [a, "nope-1", c, mine, b], "action": "approve", "comment": "ok"},
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["ok"] is False
    rows = {r["task_id"]: r for r in body["results"]}
    assert [r["task_id"] for r in body["results"]] == [a, "nope-1", c, mine, b]
    assert rows[a]["ok"] and rows[b]["ok"] and rows[a]["status"] == "completed"
    assert rows[a]["problem"] is None and rows[a]["error"] is None
    assert rows["nope-1"]["problem"]["type"] == TYPE + "not-found"
    assert rows[c]["problem"]["type"] == TYPE + "task-already-decided"
    assert rows[c]["problem"]["decided_by"] == "feng.xue" and rows[c]["problem"]["status"] == 409
    assert rows[mine]["problem"]["status"] == 403 and "four-eyes" in rows[mine]["error"]
    for task_id in (a, b):
        assert lite.get(f"/v1/tasks/{task_id}", "cao.yu").json()["decided_by"] == "deng.ping"

    res = lite.post("/v1/tasks/batch", "feng.xue", json={"task_ids": [mine], "action": "approve"})
    assert res.json() == {"ok": True, "results": [res.json()["results"][0]]}
    assert res.json()["results"][0]["ok"] is True


# --------------------------------------------------------------------------- listings


def test_my_decisions_and_my_requests(lite: Api) -> None:
    one = lite.start()
    two = lite.start(user="huang.tao")
    task_id = one["tasks"][0]["id"]
    lite.post(
        f"/v1/tasks/{task_id}/decision", "deng.ping", json={"action": "approve", "comment": "fine"}
    )

    res = lite.get("/v1/decisions", "deng.ping")
    assert res.status_code == 200, res.text
    [row] = res.json()["items"]
    assert (row["id"], row["action"], row["comment"], row["task_status"]) == (
        task_id,
        "approve",
        "fine",
        "done",
    )
    assert lite.get("/v1/decisions?by=me", "feng.xue").json()["items"] == []
    res = lite.get("/v1/decisions?by=deng.ping", "feng.xue")
    assert res.status_code == 403 and res.json()["type"] == TYPE + "forbidden"
    admin = lite.http.get("/v1/decisions?by=deng.ping", headers=lite.auth("cao.yu", "admin"))
    assert [r["id"] for r in admin.json()["items"]] == [task_id]
    res = lite.http.get("/v1/decisions?by=no.body", headers=lite.auth("cao.yu", "admin"))
    assert res.status_code == 404, res.text
    assert lite.get("/v1/decisions?cursor=zzz", "deng.ping").status_code == 422

    mine = lite.get("/v1/instances?requester=me", "huang.tao").json()["items"]
    assert [i["id"] for i in mine] == [two["id"]]


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_operations_on_postgresql(pg_url: str, api_procs: Path) -> None:
    for base, wf in run_server(pg_url, api_procs):
        with httpx.Client(base_url=base, timeout=30) as http:
            api = Api(base, wf, http)
            inst = api.start()
            task_id = inst["tasks"][0]["id"]
            assert api.post(f"/v1/tasks/{task_id}/claim", "deng.ping").status_code == 200
            res = api.post(f"/v1/tasks/{task_id}/remind", "liu.yang")
            assert res.status_code == 200, res.text
            before = api.fingerprint()
            problem = denied(
                api, before, api.post(f"/v1/tasks/{task_id}/remind", "liu.yang"), 429, "too-soon"
            )
            assert int(problem["retry_after"]) > 3500
            res = api.post(
                f"/v1/instances/{inst['id']}/withdraw", "liu.yang", json={"comment": "no"}
            )
            assert res.json()["status"] == "withdrawn"
            before = api.fingerprint()
            res = api.post(f"/v1/tasks/{task_id}/unclaim", "deng.ping")
            refused(api, before, res, 409, "task-already-decided")
