"""Instances, the diagram, the audit log, definitions and health, as each caller may see them."""

from __future__ import annotations

from storage.db import HEAD_REVISION
from tests.api.conftest import SPEND, Api


def test_start_answers_201_with_location_and_masks_per_caller(api: Api) -> None:
    res = api.post(
        "/v1/instances",
        "liu.yang",
        json={"process": "spend", "variables": {"amount": "99.90", "salary": "50000.00"}},
    )
    assert res.status_code == 201, res.text
    inst = res.json()
    assert res.headers["location"] == f"/v1/instances/{inst['id']}"
    assert inst["requester"] == "liu.yang" and inst["variables"]["salary"] == "50000.00"
    seen = {
        user: api.http.get(res.headers["location"], headers=api.auth(user)).json()
        for user in ("liu.yang", "guo.yan", "deng.ping")
    }
    assert seen["liu.yang"]["variables"]["salary"] == "50000.00"  # the requester
    assert seen["guo.yan"]["variables"]["salary"] == "50000.00"  # cfo: confidential_to
    assert seen["deng.ping"]["variables"]["salary"] == "***"
    history = seen["deng.ping"]["history"][0]["data"]["input"]
    assert history["salary"] == "***" and history["amount"] == "99.90"


def test_instances_list_mine_unless_admin(api: Api) -> None:
    mine = api.start(user="liu.yang")["id"]
    theirs = api.start(user="huang.tao")["id"]
    listed = api.get("/v1/instances", "liu.yang").json()["items"]
    assert [i["id"] for i in listed] == [mine]
    res = api.get("/v1/instances", "liu.yang", params={"requester": "huang.tao"})
    assert res.status_code == 403
    admin = api.auth("cao.yu", "read,admin")
    everything = api.http.get("/v1/instances", headers=admin).json()["items"]
    assert [i["id"] for i in everything] == [mine, theirs]
    only = api.http.get(
        "/v1/instances", headers=admin, params={"requester": "huang.tao", "status": "active"}
    ).json()["items"]
    assert [i["id"] for i in only] == [theirs]
    page = api.http.get("/v1/instances", headers=admin, params={"limit": 1}).json()
    nxt = api.http.get(
        "/v1/instances", headers=admin, params={"limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert [i["id"] for i in page["items"] + nxt["items"]] == [mine, theirs]


def test_the_diagram_marks_where_the_instance_stands(api: Api) -> None:
    inst = api.start()
    res = api.get(f"/v1/instances/{inst['id']}/diagram", "deng.ping")
    assert res.status_code == 200
    body = res.json()
    assert body["state"] == "review" and body["open_tasks"] == [inst["tasks"][0]["id"]]
    assert body["mermaid"].startswith("stateDiagram-v2")
    assert "class review current" in body["mermaid"]
    assert "review --> done: approve (finance)" in body["mermaid"]


def test_audit_is_an_operator_view_except_for_one_instance(api: Api) -> None:
    inst = api.start(user="liu.yang")
    res = api.get("/v1/audit", "deng.ping")
    assert res.status_code == 403 and res.json()["type"].endswith("/forbidden")
    one = api.get("/v1/audit", "deng.ping", params={"instance": inst["id"]}).json()["items"]
    assert [e["action"] for e in one] == ["start"]
    assert one[0]["data"]["input"]["salary"] == "***"
    admin = api.auth("cao.yu", "read,admin")
    full = api.http.get("/v1/audit", headers=admin, params={"action": "start"}).json()["items"]
    assert full[0]["data"]["input"]["salary"] == "30000.00"
    deploys = api.http.get("/v1/audit", headers=admin, params={"action": "deploy"}).json()
    assert [e["process"] for e in deploys["items"]] == ["spend"]
    res = api.http.get("/v1/audit", headers=admin, params={"since": "2026-01-01T00:00"})
    assert res.status_code == 422 and res.json()["errors"][0]["parameter"] == "query.since"
    since = api.http.get(
        "/v1/audit", headers=admin, params={"since": "9000-01-01T00:00+08:00"}
    ).json()
    assert since["items"] == []
    for far in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-23:59"):
        res = api.http.get("/v1/audit", headers=admin, params={"since": far, "until": far})
        assert res.status_code == 200, res.text
    res = api.http.get("/v1/audit", headers=admin, params={"until": "0.5"})
    assert res.status_code == 422, res.text
    verify = api.http.get("/v1/audit/verify", headers=admin)
    assert verify.status_code == 200 and verify.json()["ok"] is True
    assert verify.json()["problems"] == []
    head = api.http.get("/v1/audit/head", headers=admin).json()
    assert head["head"].startswith("shenpi-audit-head/1:") and head["entries"] == 2


def test_definitions_listed_shown_and_validated(api: Api) -> None:
    listed = api.get("/v1/definitions", "deng.ping").json()
    assert [(d["process"], d["version"], d["title"]) for d in listed] == [
        ("spend", 1, "Spend request")
    ]
    latest = api.get("/v1/definitions/spend", "deng.ping").json()
    assert latest["source"] == SPEND
    one = api.get("/v1/definitions/spend/versions/1", "deng.ping")
    assert one.status_code == 200 and one.json()["version"] == 1
    assert api.get("/v1/definitions/spend/versions/2", "deng.ping").status_code == 404
    assert api.get("/v1/definitions/nope", "deng.ping").status_code == 404

    ok = api.post("/v1/definitions/validate", "deng.ping", json={"source": SPEND})
    assert ok.json() == {"valid": True, "kind": "process", "name": "spend", "problems": []}
    broken = SPEND.replace("title: Spend request", "title: Spend request\nbogus: 1")
    res = api.post(
        "/v1/definitions/validate", "deng.ping", json={"source": broken, "file": "spend.yaml"}
    )
    assert res.status_code == 200
    body = res.json()
    assert body["valid"] is False
    assert [(p["file"], p["line"], p["col"]) for p in body["problems"]] == [("spend.yaml", 3, 1)]
    assert "bogus" in body["problems"][0]["message"]
    no_role = SPEND.replace("role: finance", "role: no_such_role")
    body = api.post("/v1/definitions/validate", "deng.ping", json={"source": no_role}).json()
    assert body["valid"] is False
    assert [(p["line"], "no_such_role" in p["message"]) for p in body["problems"]] == [(15, True)]
    yaml_error = api.post("/v1/definitions/validate", "deng.ping", json={"source": "a: [1"})
    assert yaml_error.json()["valid"] is False


def test_health_and_readiness(api: Api) -> None:
    assert api.http.get("/healthz").json()["status"] == "ok"
    ready = api.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["revision"] == ready.json()["expected_revision"] == HEAD_REVISION


def test_me_says_who_the_token_acts_as(api: Api) -> None:
    res = api.get("/v1/me", headers=api.auth("chen.jun", "read"))
    assert res.status_code == 200
    body = res.json()
    assert (body["user"], body["roles"], body["delegate"], body["scopes"]) == (
        "chen.jun",
        ["service_director"],
        "zhou.min",
        ["read"],
    )
