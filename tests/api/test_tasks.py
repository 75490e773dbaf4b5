"""Tasks over HTTP: my list with paging, one task, deciding it, and who may."""

from __future__ import annotations

from tests.api.conftest import Api

PROBLEM = "application/problem+json"


def test_an_approver_lists_and_decides_their_task(api: Api) -> None:
    inst = api.start()
    task_id = inst["tasks"][0]["id"]
    listed = api.get("/v1/tasks", "deng.ping")
    assert listed.status_code == 200, listed.text
    assert [t["id"] for t in listed.json()["items"]] == [task_id]
    assert listed.json()["items"][0]["title"] == "Finance review"
    assert api.get("/v1/tasks", "lin.feng").json()["items"] == []  # not finance

    one = api.get(f"/v1/tasks/{task_id}", "deng.ping").json()
    assert one["status"] == "open" and one["actions"] == ["approve", "reject"]

    res = api.post(
        f"/v1/tasks/{task_id}/decision",
        "deng.ping",
        json={"action": "approve", "comment": "ok", "variables": {"note": "fine"}},
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["state"] == "done" and body["status"] == "completed"
    assert body["variables"]["note"] == "fine"
    assert body["variables"]["salary"] == "***"  # deng.ping is not entitled
    assert body["history"][-1]["actor"] == "deng.ping"
    closed = api.get(f"/v1/tasks/{task_id}", "deng.ping").json()
    assert closed["decided_by"] == "deng.ping" and closed["decision"] == "approve"


def test_deciding_twice_is_409_naming_who_decided(api: Api) -> None:
    task_id = api.start()["tasks"][0]["id"]
    assert (
        api.post(f"/v1/tasks/{task_id}/decision", "feng.xue", json={"action": "approve"})
    ).status_code == 200
    before = api.fingerprint()
    res = api.post(f"/v1/tasks/{task_id}/decision", "deng.ping", json={"action": "approve"})
    assert res.status_code == 409
    assert res.headers["content-type"] == PROBLEM
    problem = res.json()
    assert problem["type"] == "https://shenpi.dev/problems/task-already-decided"
    assert problem["decided_by"] == "feng.xue" and problem["decision"] == "approve"
    assert "feng.xue" in problem["detail"]
    assert api.fingerprint() == before


def test_four_eyes_is_403_and_recorded_as_denied_only(api: Api) -> None:
    # deng.ping (finance) requests, so may not approve their own request
    task_id = api.start(user="deng.ping")["tasks"][0]["id"]
    assert api.get("/v1/tasks", "deng.ping").json()["items"] == []
    before = api.fingerprint()
    res = api.post(f"/v1/tasks/{task_id}/decision", "deng.ping", json={"action": "approve"})
    assert res.status_code == 403, res.text
    problem = res.json()
    assert problem["type"] == "https://shenpi.dev/problems/action-not-allowed"
    assert "four-eyes" in problem["detail"] and problem["task_id"] == task_id
    after = api.fingerprint()
    # the CLI's contract: a refused action on an open task is audited as `denied`, and
    # that entry is the only change
    assert after["audit"] == before["audit"] + 1
    assert {k: v for k, v in after.items() if k != "audit"} == {
        k: v for k, v in before.items() if k != "audit"
    }
    denied = api.wf.store.query_audit(action="denied")
    assert [(d["actor"], d["task_id"]) for d in denied] == [("deng.ping", task_id)]


def test_wrong_role_and_missing_comment_are_403(api: Api) -> None:
    task_id = api.start()["tasks"][0]["id"]
    res = api.post(f"/v1/tasks/{task_id}/decision", "lin.feng", json={"action": "approve"})
    assert res.status_code == 403 and "needs role finance" in res.json()["detail"]
    res = api.post(f"/v1/tasks/{task_id}/decision", "deng.ping", json={"action": "reject"})
    assert res.status_code == 403 and "comment is required" in res.json()["detail"]
    res = api.post(
        f"/v1/tasks/{task_id}/decision",
        "deng.ping",
        json={"action": "reject", "comment": "too dear"},
    )
    assert res.status_code == 200 and res.json()["state"] == "rejected"


def test_tasks_page_with_a_cursor_and_a_link_header(api: Api) -> None:
    ids = [api.start()["tasks"][0]["id"] for _ in range(3)]
    first = api.get("/v1/tasks", "deng.ping", params={"limit": 2})
    assert first.status_code == 200
    page = first.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    assert first.headers["link"] == f'</v1/tasks?limit=2&cursor={page["next_cursor"]}>; rel="next"'
    second = api.get("/v1/tasks", "deng.ping", params={"limit": 2, "cursor": page["next_cursor"]})
    rest = second.json()
    assert rest["next_cursor"] is None and "link" not in second.headers
    assert sorted(t["id"] for t in page["items"] + rest["items"]) == sorted(ids)


def test_task_filters(api: Api) -> None:
    api.start()
    assert len(api.get("/v1/tasks", "deng.ping", params={"process": "spend"}).json()["items"]) == 1
    assert api.get("/v1/tasks", "deng.ping", params={"process": "other"}).json()["items"] == []
    assert api.get("/v1/tasks", "deng.ping", params={"overdue": "true"}).json()["items"] == []
    assert len(api.get("/v1/tasks", "deng.ping", params={"role": "finance"}).json()["items"]) == 1
    res = api.get("/v1/tasks", "deng.ping", params={"role": "no_such_role"})
    assert res.status_code == 404 and res.json()["type"].endswith("/not-found")


def test_exact_money_over_json(api: Api) -> None:
    """A JSON number with decimals is read exactly (never a binary float)."""
    res = api.post(
        "/v1/instances",
        "liu.yang",
        content=b'{"process": "spend", "variables": {"amount": 1000.10, "reason": "x"}}',
        headers={"content-type": "application/json"},
    )
    assert res.status_code == 201, res.text
    assert res.json()["variables"]["amount"] == "1000.10"
