"""Deliver outbox notices after commit: resolve recipients, render, send, mark.

Notices are written in the same transaction as the step that caused them, so none is lost
and none is sent for a step that rolled back. Rendering uses a sandboxed Jinja2
environment whose templates are files we ship; values from users are passed as data and
never compiled as templates.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from engine.org import Org
from notifiers.channels.base import Delivery, Message, Recipient
from notifiers.channels.console import ConsoleChannel as _ConsoleChannel

TEMPLATES = Path(__file__).parent / "templates"
log = logging.getLogger("shenpi.notify")
_CONTACT_FIELDS = ("email", "phone", "wecom", "dingtalk")


class Channel(Protocol):
    name: str

    def send(self, user_id: str, address: dict[str, Any], message: str) -> None: ...


class ConsoleChannel(_ConsoleChannel):
    """The console channel of notifiers.channels, still callable the old way by dispatch.

    ``send(message)`` is the channel interface; ``send(user_id, address, text)`` is what
    dispatch calls until it sends per-recipient Messages.
    """

    def send(  # type: ignore[override]
        self, message: Message | str, address: dict[str, Any] | None = None, text: str = ""
    ) -> Delivery:
        if isinstance(message, Message):
            return super().send(message)
        contacts = {k: v for k, v in (address or {}).items() if k in _CONTACT_FIELDS}
        who = Recipient(user_id=message, **contacts)
        return super().send(Message(delivery_id="", recipient=who, text=text))


def _env() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(str(TEMPLATES)),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )


_ENV = _env()


def render(event: str, data: dict[str, Any]) -> str:
    try:
        template = _ENV.get_template(f"{event}.txt.j2")
    except TemplateNotFound:
        template = _ENV.from_string("[{{ process }}] {{ event }} on instance {{ instance_id }}.")
    defaults = {
        "title": "",
        "state": "",
        "due_at": None,
        "level": "",
        "reassigned_to": None,
        "outcome": "",
        "task_id": None,
        "event": event,
    }
    return template.render(**(defaults | data)).strip()


def recipients(org: Org, targets: list[str]) -> list[str]:
    """``role:x`` -> the users acting for that role now; ``user:y`` -> y (or y's delegate)."""
    out: list[str] = []
    for target in targets:
        kind, _, ident = target.partition(":")
        if kind == "role":
            out.extend(org.holders(ident))
        elif kind == "user" and ident in org.users:
            user = org.users[ident]
            out.append(ident if user.active or not user.delegate else user.delegate)
    return list(dict.fromkeys(out))


MAX_ATTEMPTS = 5


def dispatch(store: Any, org: Org, channels: list[Channel], now: datetime, limit: int = 100) -> int:
    """Send the pending notices this worker claims; returns how many were handled.

    A notice whose channel fails goes back to pending and is tried again on the next
    dispatch, up to MAX_ATTEMPTS; then it is marked failed with the last error.
    """
    handled = 0
    for notice in store.claim_notices(now, limit=limit):
        data = dict(notice.get("data") or {})
        data.update(
            instance_id=notice["instance_id"],
            task_id=notice.get("task_id"),
            process=data.get("process") or notice.get("process") or "",
        )
        try:
            for user_id in recipients(org, list(notice["recipients"])):
                user = org.users[user_id]
                message = render(notice["event"], data | {"recipient_name": user.name})
                for channel in channels:
                    channel.send(user_id, user.contacts.model_dump(), message)
            store.mark_notice(notice["id"], "sent", at=now)
        except Exception as exc:  # a failing channel must not block the rest of the outbox
            final = int(notice.get("attempts") or 0) + 1 >= MAX_ATTEMPTS
            log.error("notice %s failed (final: %s): %s", notice["id"], final, exc)
            status = "failed" if final else "pending"
            store.mark_notice(notice["id"], status, error=str(exc)[:500], at=now)
        handled += 1
    return handled
