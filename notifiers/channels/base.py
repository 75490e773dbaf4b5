"""What every channel takes and returns, so the outbox can treat them all alike.

A channel never raises for a failed delivery: it returns a :class:`Delivery` whose status
tells the outbox what to do next. ``transient`` means "try the same message again later"
(timeouts, refused connections, 5xx, 429, a vendor's throttling code); ``permanent`` means
"retrying will not help" (4xx, a bad signature, a header we refuse to send) so the row
should be marked failed and a person told. Secrets are never part of ``detail``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol

Status = Literal["ok", "transient", "permanent"]

DETAIL_MAX = 300


@dataclass(frozen=True)
class Button:
    """A link button on a card: robots render it as a button, email and console as a link."""

    title: str
    url: str


@dataclass(frozen=True)
class Card:
    title: str
    text: str
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True)
class Recipient:
    """Where one person is reached; mirrors the org chart's ``contacts``."""

    user_id: str = ""
    name: str = ""
    email: str | None = None
    phone: str | None = None
    wecom: str | None = None
    dingtalk: str | None = None


@dataclass(frozen=True)
class Message:
    """One rendered notice for one recipient.

    ``delivery_id`` is created when the notice is queued and reused on every retry: it
    becomes the webhook-id and the e-mail Message-ID, so receivers can drop duplicates of
    an at-least-once delivery.
    """

    delivery_id: str
    recipient: Recipient = Recipient()
    subject: str = ""
    text: str = ""
    html: str | None = None
    markdown: str | None = None
    card: Card | None = None
    event: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    # A group robot's one post for several people: everyone it mentions (else the recipient)
    mentions: tuple[Recipient, ...] = ()

    @property
    def people(self) -> tuple[Recipient, ...]:
        """Who a robot @-mentions: the group post's recipients, or the one recipient."""
        return self.mentions or (self.recipient,)

    @property
    def body_markdown(self) -> str:
        """Markdown for robots: the card's text, else the markdown, else the plain text."""
        if self.card is not None:
            return self.card.text
        return self.markdown if self.markdown is not None else self.text


@dataclass(frozen=True)
class Delivery:
    """The outcome of one send attempt.

    ``retry_after`` is the server's own request to wait (Retry-After, a throttle code), in
    seconds; the outbox should not try this channel again before it has passed.
    """

    status: Status
    detail: str = ""
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> Delivery: ...


def ok(detail: str = "") -> Delivery:
    return Delivery("ok", _one_line(detail))


def transient(detail: str, retry_after: float | None = None) -> Delivery:
    return Delivery("transient", _one_line(detail), retry_after)


def permanent(detail: str) -> Delivery:
    return Delivery("permanent", _one_line(detail))


def _one_line(text: str) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= DETAIL_MAX else flat[: DETAIL_MAX - 1] + "…"


def scrub(delivery: Delivery, secrets: Iterable[str]) -> Delivery:
    """Blank out any secret a server or library echoed into the detail."""
    detail = delivery.detail
    for secret in secrets:
        if secret and secret in detail:
            detail = detail.replace(secret, "***")
    if detail == delivery.detail:
        return delivery
    return Delivery(delivery.status, detail, delivery.retry_after)


# CR, LF and every other line boundary of str.splitlines(): Python's email package
# refuses them all in headers, and a receiver might split a subject at any of them.
_HEADER_BREAK = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def markdown_escape(text: str) -> str:
    """Backslash-escape markdown syntax, so a value cannot become a link, a mention or a tag.

    Here, not in the renderer, because robots put a card's plain title into markdown too.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def has_line_break(*values: str | None) -> bool:
    """True if any value would start a new header line (header injection)."""
    return any(v is not None and _HEADER_BREAK.search(v) for v in values)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Parse a Retry-After header (delta-seconds or an HTTP date) relative to ``now``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - now) / timedelta(seconds=1), 0.0)
