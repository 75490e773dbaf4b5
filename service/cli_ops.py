"""Commands that run the clock and read the calendar: tick, serve, calendar."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from service.cli import cli
from service.cli_base import (
    Settings,
    cell,
    emit,
    output_option,
    pass_settings,
    refusals,
)
from service.display import display_tz

if TYPE_CHECKING:
    import socket

    from api.deps import ApiConfig
    from notifiers.outbox import Outlet
    from service.workflow import Workflow

CHANNELS_HELP = (
    "channels.yaml to send through (env SHENPI_CHANNELS; default: channels.yaml in "
    "--processes if present, else the console only)."
)
channels_option = click.option(
    "--channels", "channels_file", default=None, metavar="FILE", help=CHANNELS_HELP
)
public_url_option = click.option(
    "--public-url",
    envvar="SHENPI_PUBLIC_URL",
    metavar="URL",
    help="Where people reach the HTTP API (https://shenpi.example.com): per-person "
    "notices carry one-time action links to it (env SHENPI_PUBLIC_URL; default: no links).",
)


@cli.command()
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10_000))
@channels_option
@public_url_option
@output_option
@pass_settings
def tick(
    settings: Settings, batch: int, channels_file: str | None, public_url: str | None, output: str
) -> None:
    """Fire every due timer and scheduled run once, as of --now (or the clock), then send
    the outbox. Safe to run from several processes at once."""
    from service.channels import load_outlet
    from service.timekeeper import tick_and_send

    with refusals():
        outlet = load_outlet(
            settings.processes, channels_file, lambda m: click.echo(m, err=True), public_url
        )
        wf = settings.workflow()
        data = tick_and_send(wf, settings.at(), outlet, batch=batch).as_dict()
    emit(output, data, lambda: click.echo(" ".join(f"{k}={cell(v)}" for k, v in data.items())))


@cli.command()
@click.argument("year", required=False, type=click.IntRange(1900, 2200))
@click.option("--name", "calendar_name", default="cn", show_default=True, help="Calendar to show.")
@output_option
@pass_settings
def calendar(settings: Settings, year: int | None, calendar_name: str, output: str) -> None:
    """List a year's non-working days and working weekend days (调休) of a calendar."""
    from service.queries import calendar_view, org_catalog

    with refusals():
        catalog = org_catalog(settings.processes)  # files only: no database needed
        year = year or settings.at().astimezone(display_tz()).year
        data = calendar_view(catalog, calendar_name, year)

    def render() -> None:
        status = "provisional" if data["provisional"] else "official"
        click.echo(f"calendar {data['calendar']} ({data['timezone']}), {year} ({status})")
        for warning in data["warnings"]:
            click.echo(f"warning: {warning}")
        click.echo("non-working days (besides ordinary weekends):")
        for d in data["non_working_days"]:
            click.echo(f"  {d['date']}  {d['name']}")
        click.echo("weekend days that are working days (调休):")
        for d in data["working_weekend_days"]:
            click.echo(f"  {d}")

    emit(output, data, render)


@cli.command()
@click.option(
    "--every",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.5, 3600),
    help="Seconds between ticks.",
)
@click.option(
    "--once", is_flag=True, help="Deploy, run one tick and exit (for checks and cron; no HTTP)."
)
@channels_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address the HTTP API listens on (0.0.0.0: every interface; put TLS in front).",
)
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="HTTP port."
)
@click.option("--no-http", is_flag=True, help="Only the scheduler, no HTTP API.")
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Allow browser calls from this origin, e.g. https://ops.example.com (repeatable; "
    "default: CORS off).",
)
@click.option(
    "--max-body",
    default=256,
    show_default=True,
    type=click.IntRange(1, 100_000),
    metavar="KIB",
    help="Largest request body accepted, in KiB (larger: 413).",
)
@click.option(
    "--rate",
    default=600,
    show_default=True,
    type=click.IntRange(0, 1_000_000),
    metavar="N",
    help="Requests per minute per API token (bursts of up to a tenth, at least 10; "
    "more: 429 with Retry-After; 0: no limit).",
)
@click.option(
    "--hooks",
    "hooks_file",
    metavar="FILE",
    help="Webhook senders that may act for people (env SHENPI_HOOKS; default: hooks.yaml "
    "in --processes; none: every sender is refused).",
)
@public_url_option
@pass_settings
def serve(
    settings: Settings,
    every: float,
    once: bool,
    channels_file: str | None,
    host: str,
    port: int,
    no_http: bool,
    cors_origins: tuple[str, ...],
    max_body: int,
    rate: int,
    hooks_file: str | None,
    public_url: str | None,
) -> None:
    """Deploy the processes in --processes, then serve the HTTP API (/v1, docs at /docs)
    on --host:--port and run the scheduler beside it: every few seconds fire due timers
    and scheduled runs and send the outbox. Several serve processes may share a
    PostgreSQL database; each timer and scheduled run still happens once. Decisions
    that arrive together on SQLite share one commit (group commit), each with its own
    result. Ctrl-C stops both cleanly."""
    from service.channels import load_outlet
    from service.scheduler import run_scheduler

    with refusals():
        outlet = load_outlet(settings.processes, channels_file, print, public_url)
        # the HTTP request threads' steps share commits where that pays (SQLite)
        from storage.groupcommit import pays_off

        http = not (once or no_http)
        wf = settings.workflow(create=True, group_commit=http and pays_off(settings.db))
        sock = None
        if not (once or no_http):
            from api.server import bind

            sock = bind(host, port)  # before anything runs: a port in use is one line
        result = wf.deploy([], by="system", now=settings.at())
        for d in result:
            status = "deployed" if d.created else "unchanged"
            click.echo(f"{d.process} v{d.version} {status}", err=True)
        if sock is None:
            run_scheduler(wf, every=every, once=once, fixed_now=settings.now, outlet=outlet)
            return
        from api.deps import ApiConfig

        config = ApiConfig(
            max_body_bytes=max_body * 1024,
            rate_per_minute=float(rate),
            rate_burst=max(10, rate // 10),
            cors_origins=cors_origins,
            hooks_file=hooks_file,
            public_url=public_url,
        )
        _serve_http(settings, wf, sock, every, outlet, config)


def _serve_http(
    settings: Settings,
    wf: Workflow,
    sock: socket.socket,
    every: float,
    outlet: Outlet,
    config: ApiConfig,
) -> None:
    """uvicorn in the main thread (it owns the signals), the scheduler on its own thread
    with a Workflow of its own on the same store."""
    from api import server
    from api.app import create_app
    from service.scheduler import start_background
    from service.workflow import Workflow

    app = create_app(wf, config)
    ticker = Workflow(wf.store, wf.processes_dir, cache=wf.cache)
    scheduler = start_background(ticker, every=every, fixed_now=settings.now, outlet=outlet)
    host, port = sock.getsockname()[:2]
    click.echo(f"HTTP API on http://{host}:{port}/v1 (docs: /docs)", err=True)
    try:
        server.run(app, sock)
    finally:
        scheduler.shutdown(wait=True)
        sock.close()
        click.echo("stopped", err=True)
