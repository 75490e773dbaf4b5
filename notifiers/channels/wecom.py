"""WeCom (企业微信) group robot: markdown, ``<@userid>`` mentions, a 4,096-byte limit.

The robot has no signing; its ``key`` is the secret. Content longer than the limit is
refused by WeCom (errcode 40058), so it is cut here on a UTF-8 character boundary and
marked, rather than losing the whole notice.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
from pydantic import SecretStr

from notifiers.channels.base import Delivery, Message, ok, permanent, scrub, transient
from notifiers.channels.clock import Clock, as_utc, utcnow
from notifiers.channels.httpsend import dumps, post

DEFAULT_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
MAX_BYTES = 4096
MARKER = "\n…(truncated)"

# -1: system busy; 45009: API frequency limit.
TRANSIENT = {-1, 45009}


def truncate(text: str, limit: int = MAX_BYTES, marker: str = MARKER) -> str:
    """``text`` if it fits in ``limit`` UTF-8 bytes, else a prefix that does plus ``marker``."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    room = limit - len(marker.encode("utf-8"))
    # decoding with "ignore" drops only the partial character left at the cut
    return raw[: max(room, 0)].decode("utf-8", errors="ignore") + marker


def content(message: Message) -> str:
    parts = []
    if message.card is not None:
        parts.append(f"**{message.card.title}**")
    elif message.subject:
        parts.append(f"**{message.subject}**")
    parts.append(message.body_markdown)
    if message.card is not None and message.card.buttons:
        parts.append("  ".join(f"[{b.title}]({b.url})" for b in message.card.buttons))
    body = "\n".join(p for p in parts if p)
    if message.recipient.wecom:
        body = f"<@{message.recipient.wecom}>\n{body}"  # first, so truncation keeps it
    return truncate(body)


def check(body: object) -> Delivery:
    if not isinstance(body, dict) or "errcode" not in body:
        return permanent(f"unexpected reply: {str(body)[:200]}")
    code = body.get("errcode")
    msg = str(body.get("errmsg", ""))
    if code == 0:
        return ok()
    if code in TRANSIENT:
        return transient(f"errcode {code}: {msg}", 60.0 if code == 45009 else None)
    return permanent(f"errcode {code}: {msg}")


class WeComChannel:
    def __init__(
        self,
        *,
        name: str = "wecom",
        key: SecretStr,
        url: str = DEFAULT_URL,
        timeout: float = 10.0,
        clock: Clock = utcnow,
        client: httpx.Client | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self._key = key
        self.clock = clock
        self.client = client or httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        return f"WeComChannel(name={self.name!r}, url={self.url!r})"

    def send(self, message: Message) -> Delivery:
        now = as_utc(self.clock())
        key = self._key.get_secret_value()
        url = f"{self.url}{'&' if '?' in self.url else '?'}key={quote(key, safe='')}"
        body = dumps({"msgtype": "markdown", "markdown": {"content": content(message)}})
        headers = {"content-type": "application/json; charset=utf-8"}
        return scrub(post(self.client, url, body, headers, now, check), [key])
