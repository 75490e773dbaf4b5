"""``notices`` and ``channels test``: look at the delivery queue, retry dead letters, try a channel.

Kept apart from service/cli.py so the list commands there stay small; the commands
register themselves on the same click group.
"""

from __future__ import annotations

import uuid
from typing import Any

import click

from service.cli import (
    Settings,
    channels_option,
    cli,
    emit,
    output_option,
    pass_settings,
    print_table,
    refusals,
)

COLUMNS = [
    "id",
    "notice_id",
    "event",
    "user_id",
    "channel",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
]


@cli.group(invoke_without_command=True)
@click.option(
    "--status", type=click.Choice(["pending", "sending", "sent", "dead"]), help="Only this status."
)
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@output_option
@click.pass_context
def notices(ctx: click.Context, status: str | None, limit: int, output: str) -> None:
    """List deliveries (one per notice, recipient and channel), oldest first."""
    if ctx.invoked_subcommand is not None:
        return
    settings = ctx.find_object(Settings)
    assert settings is not None
    with refusals():
        rows: list[dict[str, Any]] = settings.workflow().store.deliveries.list(status, limit)
    emit(output, rows, lambda: print_table(rows, COLUMNS))


@notices.command("retry")
@click.argument("ids", nargs=-1, required=True, type=click.IntRange(1))
@pass_settings
def notices_retry(settings: Settings, ids: tuple[int, ...]) -> None:
    """Send dead deliveries again (with fresh attempts) at the next dispatch."""
    with refusals():
        done = settings.workflow().store.deliveries.retry(ids, settings.at())
    click.echo(f"{len(done)} deliveries queued again: {', '.join(map(str, done))}")


@cli.group()
def channels() -> None:
    """Notification channels of channels.yaml."""


@channels.command("test")
@click.argument("name")
@click.option("--to", "user", required=True, help="The user (org.yaml) to send the test to.")
@channels_option
@pass_settings
def channels_test(settings: Settings, name: str, user: str, channels_file: str | None) -> None:
    """Send one test message through channel NAME to a user now, outside the outbox."""
    from engine.errors import NotFound
    from notifiers.messages import build_message
    from notifiers.outbox import Outlet
    from notifiers.routing import load
    from service.workflow import org_catalog

    with refusals():
        outlet = Outlet.of(load(channels_file, settings.processes), click.echo)
        channel = outlet.channels.get(name)
        if channel is None:
            raise NotFound("channel", name, f"configured: {', '.join(outlet.channels)}")
        spec = org_catalog(settings.processes).org.users.get(user)  # files: no database
        if spec is None:
            raise NotFound("user", user)
        data = {"process": "shenpi", "instance_id": "test", "title": "channel test"}
        message = build_message(f"test-{uuid.uuid4().hex}", "test", data, user, spec)
        delivery = channel.send(message)
    if not delivery.ok:
        click.echo(f"error: {name}: {delivery.status}: {delivery.detail}", err=True)
        raise SystemExit(1)
    click.echo(f"{name}: sent to {user} ({message.delivery_id})")
