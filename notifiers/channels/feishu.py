"""Feishu / Lark custom bot: an interactive card, signed in the JSON body.

Signing differs from DingTalk: ``timestamp`` in seconds, and the HMAC-SHA256 *key* is
``f"{timestamp}\\n{secret}"`` over an empty message. ``timestamp`` and ``sign`` travel in
the body. Like the other robots it answers HTTP 200 on refusal; ``code != 0`` is failure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from notifiers.channels.base import Delivery, Message, ok, permanent, scrub, transient
from notifiers.channels.clock import Clock, as_utc, utcnow
from notifiers.channels.httpsend import dumps, post

DEFAULT_URL = "https://open.feishu.cn/open-apis/bot/v2/hook/"  # Lark: open.larksuite.com

# 9499 / 11232: sending too fast (100 a minute, 5 a second per bot).
TRANSIENT = {9499, 11232}


def sign(secret: str, timestamp_s: int) -> str:
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def card(message: Message) -> dict[str, object]:
    title = message.card.title if message.card else message.subject
    elements: list[dict[str, object]] = [
        {"tag": "div", "text": {"tag": "lark_md", "content": message.body_markdown}}
    ]
    buttons = message.card.buttons if message.card else ()
    if buttons:
        elements.append(
            {
                "tag": "action",
                "actions": [
                    {
                        "tag": "button",
                        "text": {"tag": "plain_text", "content": b.title},
                        "url": b.url,
                        "type": "primary" if i == 0 else "default",
                    }
                    for i, b in enumerate(buttons)
                ],
            }
        )
    return {
        "config": {"wide_screen_mode": True},
        "header": {"title": {"tag": "plain_text", "content": title or "Shenpi"}},
        "elements": elements,
    }


def check(body: object) -> Delivery:
    if not isinstance(body, dict):
        return permanent(f"unexpected reply: {str(body)[:200]}")
    code = body.get("code", body.get("StatusCode"))
    msg = str(body.get("msg", body.get("StatusMessage", "")))
    if code == 0:
        return ok()
    if code is None:
        return permanent(f"unexpected reply: {str(body)[:200]}")
    if code in TRANSIENT:
        return transient(f"code {code}: {msg}")
    return permanent(f"code {code}: {msg}")


class FeishuChannel:
    def __init__(
        self,
        *,
        name: str = "feishu",
        token: SecretStr,
        secret: SecretStr | None = None,
        url: str = DEFAULT_URL,
        timeout: float = 10.0,
        clock: Clock = utcnow,
        client: httpx.Client | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self._token = token
        self._secret = secret
        self.clock = clock
        self.client = client or httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        return f"FeishuChannel(name={self.name!r}, url={self.url!r})"

    def send(self, message: Message) -> Delivery:
        now = as_utc(self.clock())
        token = self._token.get_secret_value()
        payload: dict[str, object] = {"msg_type": "interactive", "card": card(message)}
        secrets = [token]
        if self._secret is not None:
            ts = int(now.timestamp())
            secrets.append(self._secret.get_secret_value())
            payload = {"timestamp": str(ts), "sign": sign(secrets[1], ts)} | payload
        url = self.url.rstrip("/") + "/" + quote(token, safe="")
        headers = {"content-type": "application/json; charset=utf-8"}
        return scrub(post(self.client, url, dumps(payload), headers, now, check), secrets)
