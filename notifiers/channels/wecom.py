"""WeCom (企业微信) group robot: markdown, ``<@userid>`` mentions, a 4,096-byte limit.

The robot has no signing; its ``key`` is the secret. Content longer than the limit is
refused by WeCom (errcode 40058), so it is cut here on a UTF-8 character boundary and
marked, rather than losing the whole notice.
"""

from __future__ import annotations

from typing import Unpack
from urllib.parse import quote

from pydantic import SecretStr

from notifiers.channels.base import Delivery, Message, markdown_escape
from notifiers.channels.clock import as_utc
from notifiers.channels.httpsend import HttpChannel, HttpOptions, check_code

DEFAULT_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
MAX_BYTES = 4096
MARKER = "\n…(truncated)"

# -1: system busy; 45009: API frequency limit.
TRANSIENT: dict[int, float | None] = {-1: None, 45009: 60.0}


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
        parts.append(f"**{markdown_escape(message.card.title)}**")
    elif message.subject:
        parts.append(f"**{markdown_escape(message.subject)}**")
    parts.append(message.body_markdown)
    if message.card is not None and message.card.buttons:
        parts.append("  ".join(f"[{b.title}]({b.url})" for b in message.card.buttons))
    body = "\n".join(p for p in parts if p)
    mentions = " ".join(f"<@{p.wecom}>" for p in message.people if p.wecom)
    if mentions:
        body = f"{mentions}\n{body}"  # first, so truncation keeps them
    return truncate(body)


def check(body: object) -> Delivery:
    return check_code(body, codes=("errcode",), messages=("errmsg",), retry=TRANSIENT)


class WeComChannel(HttpChannel):
    default_name = "wecom"
    default_url = DEFAULT_URL

    def __init__(self, *, key: SecretStr, **options: Unpack[HttpOptions]) -> None:
        super().__init__(**options)
        self._key = key

    def send(self, message: Message) -> Delivery:
        now = as_utc(self.clock())
        key = self._key.get_secret_value()
        url = f"{self.url}{'&' if '?' in self.url else '?'}key={quote(key, safe='')}"
        body = {"msgtype": "markdown", "markdown": {"content": content(message)}}
        return self.post_json(url, body, now, check, [key])
