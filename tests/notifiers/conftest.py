"""Mail fixtures shared by the delivery and rendering tests: a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from tests.notifiers.channels.sinks import Mailbox, smtp_server


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp(mailbox: Mailbox) -> Iterator[Controller]:
    yield from smtp_server(mailbox)
