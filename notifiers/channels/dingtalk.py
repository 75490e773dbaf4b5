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

import httpx
from pydantic import SecretStr

from notifiers.channels.base import Delivery, Message, ok, permanent, scrub, transient
from notifiers.channels.clock import Clock, as_utc, utcnow
from notifiers.channels.httpsend import dumps, post

DEFAULT_URL = "https://oapi.dingtalk.com/robot/send"

# -1: system busy; 130101: more than 20 messages a minute (then throttled for 10 minutes).
THROTTLED = {130101: 600.0}
BUSY = {-1}


def sign(secret: str, timestamp_ms: int) -> str:
    """The raw (not URL-encoded) base64 signature."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def payload(message: Message) -> dict[str, object]:
    """actionCard when the message has buttons, markdown otherwise."""
    who = message.recipient
    at_ids = [who.dingtalk] if who.dingtalk else []
    at_mobiles = [who.phone] if who.phone and not who.dingtalk else []
    mention = " ".join(f"@{x}" for x in at_ids + at_mobiles)
    title = message.card.title if message.card else message.subject
    text = message.body_markdown
    if mention:
        text = f"{text}\n\n{mention}"
    at = {"atUserIds": at_ids, "atMobiles": at_mobiles, "isAtAll": False}
    card = message.card
    if card is not None and card.buttons:
        body: dict[str, object] = {"title": title, "text": f"### {title}\n\n{text}"}
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
    if not isinstance(body, dict) or "errcode" not in body:
        return permanent(f"unexpected reply: {str(body)[:200]}")
    code = body.get("errcode")
    msg = str(body.get("errmsg", ""))
    if code == 0:
        return ok()
    if code in THROTTLED:
        return transient(f"errcode {code}: {msg}", THROTTLED[code])  # type: ignore[index]
    if code in BUSY:
        return transient(f"errcode {code}: {msg}")
    return permanent(f"errcode {code}: {msg}")


class DingTalkChannel:
    def __init__(
        self,
        *,
        name: str = "dingtalk",
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
        return f"DingTalkChannel(name={self.name!r}, url={self.url!r})"

    def signed_url(self, now: datetime) -> str:
        query = f"access_token={quote(self._token.get_secret_value(), safe='')}"
        if self._secret is not None:
            ts = int(as_utc(now).timestamp() * 1000)
            signature = sign(self._secret.get_secret_value(), ts)
            query += f"&timestamp={ts}&sign={quote(signature, safe='')}"
        return f"{self.url}{'&' if '?' in self.url else '?'}{query}"

    def send(self, message: Message) -> Delivery:
        now = as_utc(self.clock())
        headers = {"content-type": "application/json; charset=utf-8"}
        result = post(
            self.client, self.signed_url(now), dumps(payload(message)), headers, now, check
        )
        secrets = [self._token.get_secret_value()]
        if self._secret is not None:
            secrets.append(self._secret.get_secret_value())
        return scrub(result, secrets)
