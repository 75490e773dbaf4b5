"""DingTalk custom robot (自定义机器人) with 加签 signing.

Signing: ``timestamp`` in milliseconds, ``sign = base64(HMAC-SHA256(secret,
f"{timestamp}\\n{secret}"))``, put in the query string URL-encoded exactly once (a second
encoding is what makes other clients get errcode 310000). The robot answers HTTP 200 even
when it refuses a message; the ``errcode`` in the body is the real result.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from urllib.parse import quote

from notifiers.channels.base import Delivery, Message, markdown_escape
from notifiers.channels.clock import as_utc
from notifiers.channels.httpsend import SignedRobotChannel, check_code

DEFAULT_URL = "https://oapi.dingtalk.com/robot/send"

# -1: system busy; 130101: more than 20 messages a minute (then throttled for 10 minutes).
TRANSIENT: dict[int, float | None] = {-1: None, 130101: 600.0}


def sign(secret: str, timestamp_ms: int) -> str:
    """The raw (not URL-encoded) base64 signature."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def payload(message: Message) -> dict[str, object]:
    """actionCard when the message has buttons, markdown otherwise."""
    people = message.people
    at_ids = [p.dingtalk for p in people if p.dingtalk]
    at_mobiles = [p.phone for p in people if p.phone and not p.dingtalk]
    mention = " ".join(f"@{x}" for x in at_ids + at_mobiles)
    title = message.card.title if message.card else message.subject
    text = message.body_markdown
    if mention:
        text = f"{text}\n\n{mention}"
    at = {"atUserIds": at_ids, "atMobiles": at_mobiles, "isAtAll": False}
    card = message.card
    if card is not None and card.buttons:
        heading = f"### {markdown_escape(title)}"  # title stays plain: DingTalk's preview line
        body: dict[str, object] = {"title": title, "text": f"{heading}\n\n{text}"}
        if len(card.buttons) == 1:
            body |= {"singleTitle": card.buttons[0].title, "singleURL": card.buttons[0].url}
        else:
            body |= {
                "btnOrientation": "0" if len(card.buttons) <= 2 else "1",
                "btns": [{"title": b.title, "actionURL": b.url} for b in card.buttons],
            }
        return {"msgtype": "actionCard", "actionCard": body, "at": at}
    return {"msgtype": "markdown", "markdown": {"title": title, "text": text}, "at": at}


def check(body: object) -> Delivery:
    return check_code(body, codes=("errcode",), messages=("errmsg",), retry=TRANSIENT)


class DingTalkChannel(SignedRobotChannel):
    default_name = "dingtalk"
    default_url = DEFAULT_URL

    def signed_url(self, now: datetime) -> str:
        query = f"access_token={quote(self._token.get_secret_value(), safe='')}"
        if self._secret is not None:
            ts = int(as_utc(now).timestamp() * 1000)
            signature = sign(self._secret.get_secret_value(), ts)
            query += f"&timestamp={ts}&sign={quote(signature, safe='')}"
        return f"{self.url}{'&' if '?' in self.url else '?'}{query}"

    def send(self, message: Message) -> Delivery:
        now = as_utc(self.clock())
        secrets = [self._token.get_secret_value()]
        if self._secret is not None:
            secrets.append(self._secret.get_secret_value())
        return self.post_json(self.signed_url(now), payload(message), now, check, secrets)
