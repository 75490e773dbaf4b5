"""WeCom robot: markdown, mentions, and the 4,096-byte limit."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from notifiers.channels import Button, Card, Message, Recipient, WeComChannel
from notifiers.channels.wecom import MARKER, MAX_BYTES, truncate
from tests.notifiers.channels.sinks import HttpSink, Reply

KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


def robot(sink: HttpSink, client: httpx.Client) -> WeComChannel:
    return WeComChannel(key=SecretStr(KEY), url=f"{sink.url}/cgi-bin/webhook/send", client=client)


def test_markdown_with_a_mention_and_links(sink: HttpSink, client: httpx.Client) -> None:
    card = Card("坏账核销 #42", "请审批", (Button("打开", "https://s.example.cn/t/42"),))
    message = Message(delivery_id="d", recipient=Recipient(wecom="ZhaoLei"), card=card)
    assert robot(sink, client).send(message).ok
    request = sink.requests[0]
    assert request.query["key"] == KEY
    body = request.json()
    assert body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert content.startswith("<@ZhaoLei>\n**坏账核销 \\#42**")  # the title escaped too
    assert "[打开](https://s.example.cn/t/42)" in content


def test_long_content_is_cut_to_the_limit_on_a_character_boundary(
    sink: HttpSink, client: httpx.Client
) -> None:
    long = "审批" * 3000  # 18,000 bytes
    message = Message(delivery_id="d", recipient=Recipient(wecom="ZhaoLei"), text=long)
    assert robot(sink, client).send(message).ok
    content = sink.requests[0].json()["markdown"]["content"]
    size = len(content.encode("utf-8"))
    assert MAX_BYTES - 3 <= size <= MAX_BYTES  # a 3-byte character may not fit
    assert content.startswith("<@ZhaoLei>") and content.endswith(MARKER)


@pytest.mark.parametrize("pad", range(4))
def test_truncate_never_splits_a_character(pad: int) -> None:
    text = "x" * pad + "€" * 50  # € is three bytes: every cut position is tried
    for limit in range(20, 40):
        cut = truncate(text, limit=limit, marker="…")
        assert len(cut.encode("utf-8")) <= limit
        assert cut.endswith("…") and text.startswith(cut[:-1])


def test_text_that_fits_is_left_alone() -> None:
    exact = "é" * (MAX_BYTES // 2)
    assert truncate(exact) == exact


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"errcode": 45009, "errmsg": "api freq out of limit"}, "transient"),
        ({"errcode": 93000, "errmsg": "invalid webhook url"}, "permanent"),
        ({"errcode": 0, "errmsg": "ok"}, "ok"),
    ],
)
def test_errcodes(sink: HttpSink, client: httpx.Client, reply: dict, expected: str) -> None:
    sink.default = Reply(200, reply)
    result = robot(sink, client).send(Message(delivery_id="d", text="x"))
    assert result.status == expected
    assert KEY not in result.detail
