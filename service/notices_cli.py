"""``notices`` and ``channels test``: look at the delivery queue, retry dead letters, try a channel.

The commands register themselves on the group of service/cli.py.
"""

from __future__ import annotations

import click

from service.cli import cli
from service.cli_base import (
    Settings,
    emit,
    output_option,
    pass_settings,
    print_table,
    refusals,
)
from service.cli_ops import channels_option

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
    """List deliveries (one per notice, recipient and channel; user *group* for a group
    robot's one post per notice), oldest first."""
    from service.queries import delivery_rows

    if ctx.invoked_subcommand is not None:
        return
    settings = ctx.find_object(Settings)
    assert settings is not None
    with refusals():
        rows = delivery_rows(settings.workflow(), status, limit)
    emit(output, rows, lambda: print_table(rows, COLUMNS))


@notices.command("retry")
@click.argument("ids", nargs=-1, required=True, type=click.IntRange(1))
@pass_settings
def notices_retry(settings: Settings, ids: tuple[int, ...]) -> None:
    """Send dead deliveries again (with fresh attempts) at the next dispatch."""
    from service.queries import retry_deliveries

    with refusals():
        done = retry_deliveries(settings.workflow(), ids, settings.at())
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
    from service.channels import send_test

    with refusals():
        sent = send_test(settings.processes, channels_file, name, user, click.echo)
    if not sent.ok:
        click.echo(f"error: {name}: {sent.status}: {sent.detail}", err=True)
        raise SystemExit(1)
    click.echo(f"{name}: sent to {user} ({sent.delivery_id})")
