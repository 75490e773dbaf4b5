"""Feishu/Lark bot: an interactive card, signed in the body as Feishu checks it."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import httpx
from pydantic import SecretStr

from notifiers.channels import Button, Card, FeishuChannel, Message
from tests.notifiers.channels.sinks import HttpSink, Reply, Request

SECRET = "fs-secret-1"
TOKEN = "b7c1-hook-token"
NOW = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)

CARD = Message(
    delivery_id="d",
    card=Card(
        "坏账核销 #42",
        "**金额** ¥12,000.00",
        (Button("同意", "https://s.example.cn/a"), Button("驳回", "https://s.example.cn/r")),
    ),
)


def feishu_server(request: Request) -> Reply:
    if request.path != f"/open-apis/bot/v2/hook/{TOKEN}":
        return Reply(
            200, {"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}
        )
    body = request.json()
    key = f"{body.get('timestamp')}\n{SECRET}".encode()
    expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    if body.get("sign") != expected or abs(int(body["timestamp"]) - int(NOW.timestamp())) > 3600:
        return Reply(
            200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}
        )
    return Reply(200, {"code": 0, "data": {}, "msg": "success"})


def bot(sink: HttpSink, client: httpx.Client, secret: str = SECRET) -> FeishuChannel:
    return FeishuChannel(
        token=SecretStr(TOKEN),
        secret=SecretStr(secret),
        url=f"{sink.url}/open-apis/bot/v2/hook/",
        clock=lambda: NOW,
        client=client,
    )


def test_a_signed_interactive_card_is_accepted(sink: HttpSink, client: httpx.Client) -> None:
    sink.default = feishu_server
    result = bot(sink, client).send(CARD)
    assert result.status == "ok", result.detail
    body = sink.requests[0].json()
    assert body["msg_type"] == "interactive"
    assert body["timestamp"] == str(int(NOW.timestamp()))  # seconds, not milliseconds
    card = body["card"]
    assert card["header"]["title"]["content"] == "坏账核销 #42"
    [action] = [e for e in card["elements"] if e["tag"] == "action"]
    assert [(a["text"]["content"], a["url"]) for a in action["actions"]] == [
        ("同意", "https://s.example.cn/a"),
        ("驳回", "https://s.example.cn/r"),
    ]


def test_a_bad_signature_is_permanent_despite_http_200(
    sink: HttpSink, client: httpx.Client
) -> None:
    sink.default = feishu_server
    result = bot(sink, client, secret="wrong").send(CARD)
    assert result.status == "permanent" and "19021" in result.detail


def test_frequency_limit_is_transient(sink: HttpSink, client: httpx.Client) -> None:
    sink.default = Reply(200, {"code": 11232, "msg": "frequency limited"})
    assert bot(sink, client).send(CARD).status == "transient"


def test_plain_text_becomes_a_card_with_the_subject_as_title(
    sink: HttpSink, client: httpx.Client
) -> None:
    sink.default = feishu_server
    assert bot(sink, client).send(Message(delivery_id="d", subject="提醒", text="明天到期")).ok
    card = sink.requests[0].json()["card"]
    assert card["header"]["title"]["content"] == "提醒"
    assert card["elements"] == [{"tag": "div", "text": {"tag": "lark_md", "content": "明天到期"}}]
