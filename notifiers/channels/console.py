"""The channel of last resort: writes each message to the log (and to ``write`` if given).

It is the default when no channel is configured, so a fresh install still shows who was
told what.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from notifiers.channels.base import Delivery, Message, ok

log = logging.getLogger("shenpi.notify")


class ConsoleChannel:
    name = "console"

    def __init__(self, write: Callable[[str], None] | None = None, name: str = "console") -> None:
        self.write = write
        self.name = name

    def send(self, message: Message) -> Delivery:
        who = message.recipient.user_id or message.recipient.email or "-"
        text = message.text or message.body_markdown
        log.info("notify %s: %s", who, text)
        if self.write is not None:
            self.write(f"notify {who}: {text}")
        return ok()

    def __repr__(self) -> str:
        return f"ConsoleChannel(name={self.name!r})"
