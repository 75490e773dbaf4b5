"""Webhook channel: a receiver using the official standardwebhooks library must verify it."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError

from notifiers.channels import Button, Card, Message, Recipient, WebhookChannel
from notifiers.channels.webhook import secret_key
from tests.notifiers.channels.conftest import TIMEOUT
from tests.notifiers.channels.sinks import HttpSink, Reply, Request, Responder, closed_port

OLD = "whsec_" + base64.b64encode(b"old-secret-old-secret-24").decode()
NEW = "whsec_" + base64.b64encode(b"new-secret-new-secret-24").decode()
OTHER = "whsec_" + base64.b64encode(b"not-ours-not-ours-not-24").decode()

NOTICE = Message(
    delivery_id="dlv_7f3a9c",
    recipient=Recipient(user_id="zhao.lei"),
    subject="新任务：坏账核销 #42",
    text="请审批",
    card=Card("坏账核销 #42", "请审批", (Button("打开", "https://shenpi.example.cn/t/42"),)),
    event="task.assigned",
    data={
        "process": "bad_debt_writeoff",
        "instance": "i-42",
        "task": 7,
        "actions": ["approve", "reject"],
        "due": "2026-11-28T09:00:00+08:00",
    },
)


def verifier(*secrets: str) -> Responder:
    """A receiver that accepts the request only if the official library verifies it."""

    def answer(request: Request) -> Reply:
        headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
        for secret in secrets:
            try:
                Webhook(secret).verify(request.body, headers)
            except WebhookVerificationError:
                continue
            return Reply(204, b"")
        return Reply(401, {"error": "bad signature"})

    return answer


def hook(sink: HttpSink, client: httpx.Client, *secrets: str) -> WebhookChannel:
    return WebhookChannel(
        url=f"{sink.url}/hooks/shenpi",
        secrets=[SecretStr(s) for s in secrets],
        client=client,
    )


def test_the_official_library_verifies_the_signature(sink: HttpSink, client: httpx.Client) -> None:
    sink.default = verifier(NEW)
    result = hook(sink, client, NEW).send(NOTICE)
    assert result.status == "ok", result.detail
    [request] = sink.requests
    assert request.headers["webhook-id"] == "dlv_7f3a9c"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    body = request.json()
    assert body["type"] == "task.assigned"
    assert body["data"]["process"] == "bad_debt_writeoff"
    assert body["data"]["link"] == "https://shenpi.example.cn/t/42"
    assert body["data"]["actions"] == ["approve", "reject"]  # the caller's data wins
    assert Webhook(NEW).verify(request.body, request.headers) == body


def test_during_a_rotation_both_old_and_new_receivers_verify(
    sink: HttpSink, client: httpx.Client
) -> None:
    channel = hook(sink, client, OLD, NEW)
    for receiver_secret in (OLD, NEW):
        sink.default = verifier(receiver_secret)
        assert channel.send(NOTICE).ok
    signatures = sink.requests[0].headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    sink.default = verifier(OTHER)
    refused = channel.send(NOTICE)
    assert refused.status == "permanent" and "401" in refused.detail


def test_a_tampered_body_does_not_verify(sink: HttpSink, client: httpx.Client) -> None:
    hook(sink, client, NEW).send(NOTICE)
    request = sink.requests[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(NEW).verify(request.body.replace(b"i-42", b"i-43"), request.headers)


def test_a_non_utc_clock_still_signs_correctly(sink: HttpSink, client: httpx.Client) -> None:
    """standardwebhooks' own sign() mis-signs aware non-UTC times; ours must not."""
    from zoneinfo import ZoneInfo

    sink.default = verifier(NEW)
    channel = hook(sink, client, NEW)
    channel.clock = lambda: datetime.now(ZoneInfo("Asia/Shanghai"))
    assert channel.send(NOTICE).ok


def test_500_is_transient_and_the_retry_keeps_the_webhook_id(
    sink: HttpSink, client: httpx.Client
) -> None:
    sink.replies.append(Reply(500, {"error": "db down"}))
    channel = hook(sink, client, NEW)
    first = channel.send(NOTICE)
    assert first.status == "transient" and "500" in first.detail
    assert channel.send(NOTICE).ok
    ids = {r.headers["webhook-id"] for r in sink.requests}
    assert ids == {"dlv_7f3a9c"} and len(sink.requests) == 2


def test_429_passes_on_retry_after(sink: HttpSink, client: httpx.Client) -> None:
    sink.replies.append(Reply(429, {}, {"Retry-After": "7"}))
    result = hook(sink, client, NEW).send(NOTICE)
    assert (result.status, result.retry_after) == ("transient", 7.0)


def test_other_4xx_is_permanent(sink: HttpSink, client: httpx.Client) -> None:
    sink.replies.append(Reply(410, {"error": "gone"}))
    assert hook(sink, client, NEW).send(NOTICE).status == "permanent"


def test_a_server_that_stalls_past_the_timeout_is_transient(
    sink: HttpSink, client: httpx.Client
) -> None:
    sink.replies.append(Reply(200, {}, delay=TIMEOUT + 0.5))
    started = time.monotonic()
    result = hook(sink, client, NEW).send(NOTICE)
    assert result.status == "transient" and "timed out" in result.detail
    assert time.monotonic() - started < TIMEOUT + 0.4


def test_nobody_listening_is_transient(client: httpx.Client) -> None:
    channel = WebhookChannel(
        url=f"http://127.0.0.1:{closed_port()}/h", secrets=[SecretStr(NEW)], client=client
    )
    assert channel.send(NOTICE).status == "transient"


def test_secrets_stay_out_of_repr_and_details(sink: HttpSink, client: httpx.Client) -> None:
    sink.replies.append(Reply(400, {"echo": NEW}))  # a server that echoes what it got
    channel = hook(sink, client, NEW)
    result = channel.send(NOTICE)
    assert NEW not in result.detail and "***" in result.detail
    assert NEW not in repr(channel)


@pytest.mark.parametrize("bad", ["plain", "whsec_", "whsec_not base64!"])
def test_malformed_secrets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="whsec_"):
        secret_key(bad)


def test_payload_is_the_exact_signed_bytes(sink: HttpSink, client: httpx.Client) -> None:
    hook(sink, client, NEW).send(NOTICE)
    request = sink.requests[0]
    assert json.loads(request.body.decode("utf-8"))["data"]["subject"] == "新任务：坏账核销 #42"
    assert datetime.fromisoformat(request.json()["timestamp"]).tzinfo == UTC
