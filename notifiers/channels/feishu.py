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

from notifiers.channels.base import Delivery, Message
from notifiers.channels.clock import as_utc
from notifiers.channels.httpsend import SignedRobotChannel, check_code

DEFAULT_URL = "https://open.feishu.cn/open-apis/bot/v2/hook/"  # Lark: open.larksuite.com

# 9499 / 11232: sending too fast (100 a minute, 5 a second per bot).
TRANSIENT: dict[int, float | None] = {9499: None, 11232: None}


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
    return check_code(
        body, codes=("code", "StatusCode"), messages=("msg", "StatusMessage"), retry=TRANSIENT
    )


class FeishuChannel(SignedRobotChannel):
    default_name = "feishu"
    default_url = DEFAULT_URL

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
        return self.post_json(url, payload, now, check, secrets)
