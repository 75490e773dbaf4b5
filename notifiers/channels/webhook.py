"""A JSON POST signed per Standard Webhooks (https://www.standardwebhooks.com/).

``webhook-id`` is the delivery id (stable across retries, so receivers can dedupe),
``webhook-timestamp`` is UTC seconds, and ``webhook-signature`` holds one ``v1,<base64>``
HMAC-SHA256 of ``{id}.{timestamp}.{body}`` per secret: during a rotation both the old and
the new secret sign, separated by a space, so receivers can switch over at their own pace.
The payload is ``{"type", "timestamp", "data"}`` as the spec recommends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Unpack

from pydantic import SecretStr

from notifiers.channels.base import Delivery, Message, has_line_break, permanent, scrub
from notifiers.channels.clock import as_utc
from notifiers.channels.httpsend import HttpChannel, HttpOptions, dumps, post

PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ValueError if it is not one."""
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret must start with 'whsec_'")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret must be 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("a webhook secret needs key bytes after 'whsec_'")
    return key


def signature(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    )


class WebhookChannel(HttpChannel):
    default_name = "webhook"

    def __init__(
        self, *, url: str, secrets: Sequence[SecretStr], **options: Unpack[HttpOptions]
    ) -> None:
        if not secrets or len(secrets) > 2:
            raise ValueError("a webhook channel needs one secret, or two during a rotation")
        super().__init__(**options, url=url)
        self._secrets = tuple(secrets)
        self._keys = tuple(secret_key(s.get_secret_value()) for s in secrets)

    def payload(self, message: Message, now: datetime) -> dict[str, object]:
        data = dict(message.data)
        data.setdefault("subject", message.subject)
        data.setdefault("text", message.text)
        if message.card is not None:
            data.setdefault("link", message.card.buttons[0].url if message.card.buttons else None)
            data.setdefault(
                "actions", [{"title": b.title, "url": b.url} for b in message.card.buttons]
            )
        if message.recipient.user_id:
            data.setdefault("recipient", message.recipient.user_id)
        return {
            "type": message.event or "notice",
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "data": data,
        }

    def send(self, message: Message) -> Delivery:
        if has_line_break(message.delivery_id) or not message.delivery_id:
            return permanent("the delivery id must be one non-empty line")
        now = as_utc(self.clock())
        try:
            body = dumps(self.payload(message, now))
        except (TypeError, ValueError) as exc:
            return permanent(f"payload is not JSON: {exc}")
        ts = int(now.timestamp())
        headers = {
            "content-type": "application/json",
            "webhook-id": message.delivery_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": signature(self._keys, message.delivery_id, ts, body),
        }
        result = post(self.client, self.url, body, headers, now)
        return scrub(result, [s.get_secret_value() for s in self._secrets])
