"""Every refusal is problem+json with a stable type, never a trace, and changes nothing."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx

from api.app import ApiConfig
from service.tokens import issue_token, revoke_token
from tests.api.conftest import Api, expired

PROBLEM = "application/problem+json"
TYPES = "https://shenpi.dev/problems/"


def _problem(res: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert res.status_code == status, res.text
    assert res.headers["content-type"] == PROBLEM
    body = res.json()
    assert body["type"] == TYPES + slug and body["status"] == status
    assert body["title"] and body["detail"]
    assert "Traceback" not in res.text
    return dict(body)


def test_no_bad_expired_or_revoked_token_is_401_with_www_authenticate(api: Api) -> None:
    task_id = api.start()["tasks"][0]["id"]
    now = datetime.now(UTC)
    old = issue_token(api.wf, "deng.ping", ("read", "act"), expired(), None, now).token
    revoked = issue_token(api.wf, "deng.ping", ("read", "act"), None, None, now)
    revoke_token(api.wf, revoked.row.id, now)
    good = api.token("deng.ping")
    token_id = good.split("_")[1]
    wrong_secret = f"shp_{token_id}_{'A' * 43}"
    before = api.fingerprint()
    cases = {
        None: "an API token is required",
        "Basic dXNlcjpwYXNz": "an API token is required",
        "Bearer nonsense": "malformed token",
        f"Bearer {wrong_secret}": "unknown token",
        f"Bearer shp_{'0' * 16}_{'A' * 43}": "unknown token",
        f"Bearer {old}": "the token is expired",
        f"Bearer {revoked.token}": "the token is revoked",
    }
    for header, reason in cases.items():
        headers = {"Authorization": header} if header else {}
        res = api.http.post(
            f"/v1/tasks/{task_id}/decision", headers=headers, json={"action": "approve"}
        )
        body = _problem(res, 401, "unauthorized")
        assert reason in str(body["detail"]), (header, body)
        assert res.headers["www-authenticate"].startswith("Bearer")
    assert api.fingerprint() == before
    ok = api.http.get(f"/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {good}"})
    assert ok.status_code == 200


def test_a_token_without_the_scope_is_403(api: Api) -> None:
    task_id = api.start()["tasks"][0]["id"]
    before = api.fingerprint()
    res = api.post(
        f"/v1/tasks/{task_id}/decision",
        headers=api.auth("deng.ping", "read"),
        json={"action": "approve"},
    )
    assert "'act' scope" in str(_problem(res, 403, "forbidden")["detail"])
    assert api.fingerprint() == before
    res = api.get("/v1/audit/verify", headers=api.auth("deng.ping", "read,act"))
    _problem(res, 403, "forbidden")


def test_unknown_routes_ids_and_methods(api: Api) -> None:
    _problem(api.get("/v1/nothing-here", "deng.ping"), 404, "not-found")
    _problem(api.get("/v1/tasks/nope-1", "deng.ping"), 404, "not-found")
    _problem(api.get("/v1/instances/nope", "deng.ping"), 404, "not-found")
    before = api.fingerprint()
    res = api.post("/v1/tasks/nope-1/decision", "deng.ping", json={"action": "approve"})
    _problem(res, 404, "not-found")
    _problem(api.http.delete("/v1/tasks"), 405, "method-not-allowed")
    assert api.fingerprint() == before


def test_an_unknown_query_parameter_is_400_naming_what_the_endpoint_takes(api: Api) -> None:
    api.start()
    # a misspelt filter must not answer as if there were no filter
    body = _problem(api.get("/v1/tasks?stauts=open", "deng.ping"), 400, "malformed-request")
    assert "unknown query parameter stauts" in str(body["detail"])
    assert "takes: cursor, limit, overdue, process, role" in str(body["detail"])
    assert api.get("/v1/tasks?limit=5", "deng.ping").status_code == 200
    before = api.fingerprint()
    res = api.post("/v1/instances?dry=1", "liu.yang", json={"process": "spend", "variables": {}})
    _problem(res, 400, "malformed-request")
    assert api.fingerprint() == before


def test_malformed_bodies_are_400_and_invalid_values_422_with_pointers(api: Api) -> None:
    task_id = api.start()["tasks"][0]["id"]
    url = f"/v1/tasks/{task_id}/decision"
    json_type = {"content-type": "application/json"}
    before = api.fingerprint()
    for raw in (b"{", b'{"action": "approve", "action": "reject"}', b'{"action": NaN}', b"\xff"):
        res = api.post(url, "deng.ping", content=raw, headers=json_type)
        _problem(res, 400, "malformed-request")
    res = api.post(url, "deng.ping", json={"comment": "no action"})
    body = _problem(res, 422, "invalid-request")
    assert {"detail": "Field required", "pointer": "#/action"} in body["errors"]  # type: ignore[operator]
    res = api.post(url, "deng.ping", json={"action": "approve", "extra": 1})
    assert _problem(res, 422, "invalid-request")["errors"][0]["pointer"] == "#/extra"  # type: ignore[index]
    res = api.post(url, "deng.ping", json={"action": "approve", "variables": {"nope": "1"}})
    errors = _problem(res, 422, "invalid-request")["errors"]
    assert errors[0]["pointer"] == "#/variables/nope", errors  # type: ignore[index]
    res = api.post(
        "/v1/instances", "liu.yang", json={"process": "spend", "variables": {"amount": "lots"}}
    )
    errors = _problem(res, 422, "invalid-request")["errors"]
    assert errors[0]["pointer"] == "#/variables/amount", errors  # type: ignore[index]
    res = api.get("/v1/tasks", "deng.ping", params={"limit": 0})
    assert _problem(res, 422, "invalid-request")["errors"][0]["parameter"] == "query.limit"  # type: ignore[index]
    res = api.get("/v1/tasks", "deng.ping", params={"cursor": "garbage"})
    assert _problem(res, 422, "invalid-request")["errors"][0]["parameter"] == "query.cursor"  # type: ignore[index]
    assert api.fingerprint() == before


def test_an_oversized_body_is_413_whether_declared_or_chunked(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(ApiConfig(max_body_bytes=1024))
    task_id = api.start()["tasks"][0]["id"]
    before = api.fingerprint()
    big = {"action": "approve", "comment": "x" * 2000}
    res = api.post(f"/v1/tasks/{task_id}/decision", "deng.ping", json=big)
    assert "1024 bytes" in str(_problem(res, 413, "body-too-large")["detail"])

    def chunks() -> Iterator[bytes]:
        yield b'{"action": "approve", "comment": "'
        for _ in range(10):
            yield b"y" * 200
        yield b'"}'

    res = api.post(
        f"/v1/tasks/{task_id}/decision",
        "deng.ping",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    _problem(res, 413, "body-too-large")
    assert api.fingerprint() == before
    ok = api.post(f"/v1/tasks/{task_id}/decision", "deng.ping", json={"action": "approve"})
    assert ok.status_code == 200


def test_over_the_rate_is_429_with_retry_after(make_api: Callable[..., Api]) -> None:
    api = make_api(ApiConfig(rate_per_minute=6, rate_burst=3))
    headers = api.auth("deng.ping")
    codes = [api.http.get("/v1/tasks", headers=headers).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    res = api.http.get("/v1/tasks", headers=headers)
    _problem(res, 429, "rate-limited")
    assert int(res.headers["retry-after"]) >= 1
    # per token: another user's token still has its own allowance
    assert api.get("/v1/tasks", "feng.xue").status_code == 200


def test_openapi_and_docs_are_served(api: Api) -> None:
    doc = api.http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert "Problem" in doc["components"]["schemas"]
    decide = doc["paths"]["/v1/tasks/{task_id}/decision"]["post"]
    assert {"400", "401", "403", "404", "409", "413", "422", "429"} <= set(decide["responses"])
    assert decide["security"] == [{"token": []}]
    assert api.http.get("/docs").status_code == 200


def test_cors_is_off_unless_an_origin_is_configured(make_api: Callable[..., Api]) -> None:
    api = make_api(ApiConfig(cors_origins=("https://ops.example.com",)))
    asked = {"Origin": "https://ops.example.com"}
    res = api.http.get("/healthz", headers=asked)
    assert res.headers["access-control-allow-origin"] == "https://ops.example.com"
    other = api.http.get("/healthz", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_headers_by_default(api: Api) -> None:
    res = api.http.get("/healthz", headers={"Origin": "https://ops.example.com"})
    assert "access-control-allow-origin" not in res.headers


def test_a_body_sent_too_slowly_is_408(make_api: Callable[..., Api]) -> None:
    api = make_api(ApiConfig(body_timeout_s=0.5))
    host, port = api.base.removeprefix("http://").split(":")
    token = api.token("deng.ping")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {token}\r\nContent-Length: 100\r\n\r\n".encode()
            + b'{"process"'
        )
        answer = b""
        while b"request-timeout" not in answer:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"application/problem+json" in answer and b"/problems/request-timeout" in answer
