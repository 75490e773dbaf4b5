"""DingTalk robot against a loopback sink that checks 加签 the way DingTalk does."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
from pydantic import SecretStr

from notifiers.channels import Button, Card, DingTalkChannel, Message, Recipient
from tests.notifiers.channels.sinks import HttpSink, Reply, Request

SECRET = "SEC0f3c+/ab=="  # characters that need URL-encoding in a signature are likely
TOKEN = "tok-9a8b7c"
NOW = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)

NOTICE = Message(
    delivery_id="d1",
    recipient=Recipient(user_id="zhao.lei", dingtalk="zhaolei01"),
    subject="新任务",
    markdown="**坏账核销 #42** 待审批",
)


def dingtalk_server(request: Request) -> Reply:
    """What the robot does: decode the query once, recompute, compare, check freshness."""
    q = request.query
    if q.get("access_token") != TOKEN:
        return Reply(200, {"errcode": 300001, "errmsg": "token is not exist"})
    ts = q.get("timestamp", "")
    digest = hmac.new(SECRET.encode(), f"{ts}\n{SECRET}".encode(), hashlib.sha256).digest()
    if q.get("sign") != base64.b64encode(digest).decode() or abs(int(ts) - NOW_MS) > 3_600_000:
        return Reply(200, {"errcode": 310000, "errmsg": "sign not match"})
    return Reply(200, {"errcode": 0, "errmsg": "ok"})


def robot(sink: HttpSink, client: httpx.Client, secret: str = SECRET) -> DingTalkChannel:
    return DingTalkChannel(
        token=SecretStr(TOKEN),
        secret=SecretStr(secret),
        url=f"{sink.url}/robot/send",
        clock=lambda: NOW,
        client=client,
    )


def test_the_signature_is_accepted_by_a_server_that_decodes_once(
    sink: HttpSink, client: httpx.Client
) -> None:
    sink.default = dingtalk_server
    result = robot(sink, client).send(NOTICE)
    assert result.status == "ok", result.detail
    raw = sink.requests[0].raw_query
    assert "%25" not in raw  # not encoded twice
    body = sink.requests[0].json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "新任务"
    assert "@zhaolei01" in body["markdown"]["text"]
    assert body["at"]["atUserIds"] == ["zhaolei01"]


def test_the_sink_refuses_a_twice_encoded_signature(sink: HttpSink, client: httpx.Client) -> None:
    """The check above means something: double encoding, as other clients do, is refused."""
    sink.default = dingtalk_server
    digest = hmac.new(SECRET.encode(), f"{NOW_MS}\n{SECRET}".encode(), hashlib.sha256).digest()
    twice = quote(quote(base64.b64encode(digest).decode(), safe=""), safe="")
    url = f"{sink.url}/robot/send?access_token={TOKEN}&timestamp={NOW_MS}&sign={twice}"
    assert client.post(url, json={}).json()["errcode"] == 310000


def test_buttons_make_an_action_card(sink: HttpSink, client: httpx.Client) -> None:
    card = Card(
        "坏账核销 #42",
        "金额 ¥12,000.00",
        (
            Button("同意", "https://s.example.cn/t/42/approve"),
            Button("驳回", "https://s.example.cn/t/42/reject"),
        ),
    )
    sink.default = dingtalk_server
    assert robot(sink, client).send(Message(delivery_id="d2", card=card)).ok
    body = sink.requests[0].json()
    assert body["msgtype"] == "actionCard"
    assert body["actionCard"]["btns"] == [
        {"title": "同意", "actionURL": "https://s.example.cn/t/42/approve"},
        {"title": "驳回", "actionURL": "https://s.example.cn/t/42/reject"},
    ]
    assert "金额 ¥12,000.00" in body["actionCard"]["text"]


def test_a_wrong_secret_is_a_permanent_failure_despite_http_200(
    sink: HttpSink, client: httpx.Client
) -> None:
    sink.default = dingtalk_server
    result = robot(sink, client, secret="SECwrong").send(NOTICE)
    assert result.status == "permanent" and "310000" in result.detail
    assert "SECwrong" not in result.detail


def test_throttling_is_transient_with_a_ten_minute_hold(
    sink: HttpSink, client: httpx.Client
) -> None:
    sink.default = Reply(200, {"errcode": 130101, "errmsg": "send too fast"})
    result = robot(sink, client).send(NOTICE)
    assert (result.status, result.retry_after) == ("transient", 600.0)


@pytest.mark.parametrize(("status", "expected"), [(502, "transient"), (404, "permanent")])
def test_http_errors(sink: HttpSink, client: httpx.Client, status: int, expected: str) -> None:
    sink.default = Reply(status, {"error": "x"})
    assert robot(sink, client).send(NOTICE).status == expected


def test_a_200_that_is_not_json_is_permanent(sink: HttpSink, client: httpx.Client) -> None:
    sink.default = Reply(200, b"<html>captive portal</html>")
    result = robot(sink, client).send(NOTICE)
    assert result.status == "permanent" and "not JSON" in result.detail
