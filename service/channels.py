"""The outlet notices go out through, and a channel tried by hand.

Shared by ``tick``, ``serve`` and ``channels test`` (and any other face): channels.yaml is
loaded, secrets resolved and the channel choices in org.yaml checked against it before
anything runs, so a broken configuration is refused at start and not at the first send.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from notifiers.outbox import Outlet

Write = Callable[[str], None]


def load_outlet(
    processes_dir: Path, channels_file: str | None, console: Write, public_url: str | None = None
) -> Outlet:
    """The configured channels (``console`` carries the console channel's lines).

    With a public URL (``public_url``, else ``SHENPI_PUBLIC_URL``) per-person messages carry
    one-time action links (api/linktokens.py); without one they carry none.
    """
    from dataclasses import replace

    from api.linktokens import from_env
    from engine.org import load_org
    from engine.yamlsafe import load_file
    from notifiers.outbox import Outlet
    from notifiers.routing import check_preferences, load

    config = load(channels_file, processes_dir)
    org_file = processes_dir / "org.yaml"
    if config is not None and org_file.is_file():
        doc = load_file(org_file)
        check_preferences(load_org(doc), config, doc)
    return replace(Outlet.of(config, console), links=from_env(public_url))


@dataclass(frozen=True)
class TestSend:
    """What ``send_test`` did: ``ok``, and the delivery id or the status and detail."""

    ok: bool
    delivery_id: str
    status: str
    detail: str


def send_test(
    processes_dir: Path, channels_file: str | None, name: str, user: str, console: Write
) -> TestSend:
    """Send one test message through channel ``name`` to ``user`` now, outside the outbox.

    Reads files only (channels.yaml, org.yaml): it works before any database exists.
    """
    from engine.errors import NotFound
    from notifiers.messages import build_message
    from notifiers.outbox import Outlet
    from notifiers.routing import load
    from service.workflow import org_catalog

    outlet = Outlet.of(load(channels_file, processes_dir), console)
    channel = outlet.channels.get(name)
    if channel is None:
        raise NotFound("channel", name, f"configured: {', '.join(outlet.channels)}")
    spec = org_catalog(processes_dir).org.users.get(user)
    if spec is None:
        raise NotFound("user", user)
    data = {"process": "shenpi", "instance_id": "test", "title": "channel test"}
    message = build_message(f"test-{uuid.uuid4().hex}", "test", data, user, spec)
    delivery = channel.send(message)
    return TestSend(delivery.ok, message.delivery_id, delivery.status, delivery.detail)
