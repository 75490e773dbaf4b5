"""``python run.py ...``: the command-line contract for people and scripts.

Exit status: 0 success, 1 refused or invalid (one line on stderr saying why), 2 usage.
Heavy imports (SQLAlchemy, the engine) happen inside commands so ``--help`` is instant.
The commands only parse, call service/queries.py (or the Workflow) and print; they live
by group in service/cli_*.py and notices_cli.py, which register on the group below.

The global options (``--db``, ``--processes``, ``--now``, ``-o``) may be written before the
subcommand or after it (``show X --db URL``): people put them where they think of them, and
a usage error for that teaches nothing. After the subcommand they win over before.
"""

from __future__ import annotations

from pathlib import Path

import click

from service.cli_base import (
    DB_HELP,
    DEFAULT_DB,
    NOW_HELP,
    OUTPUT_CHOICES,
    PROCESSES_HELP,
    PROCESSES_TYPE,
    Settings,
    ShenpiGroup,
    fail,
    parse_time,
    reader_gone,
)
from service.display import DisplayZoneError, display_tz

__all__ = ["cli", "main"]


@click.group(
    cls=ShenpiGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--db",
    envvar="SHENPI_DB",
    default=DEFAULT_DB,
    show_default=True,
    help=DB_HELP,
)
@click.option(
    "--processes",
    envvar="SHENPI_PROCESSES",
    default="processes",
    show_default=True,
    type=PROCESSES_TYPE,
    help=PROCESSES_HELP,
)
@click.option("--now", "now_text", envvar="SHENPI_NOW", default=None, help=NOW_HELP)
@click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_CHOICES),
    default=None,
    help="Output format of the subcommand, for those that show data [default: table].",
)
@click.pass_context
def cli(
    ctx: click.Context, db: str, processes: Path, now_text: str | None, output: str | None
) -> None:
    """Shenpi (审批): YAML-defined approval processes, run durably.

    Typical session: deploy the shipped processes, start an instance, list your tasks,
    act on one, and look at the instance and its audit trail. The options below may also
    be given after the subcommand.
    """
    try:
        display_tz()
    except DisplayZoneError as exc:
        fail(str(exc))
    if output is not None and ctx.invoked_subcommand is not None:
        sub = ctx.command.get_command(ctx, ctx.invoked_subcommand)  # type: ignore[attr-defined]
        if sub is not None and not any(p.name == "output" for p in sub.params):
            raise click.UsageError(f"{ctx.invoked_subcommand} has no -o/--output", ctx)
    now = parse_time(now_text, "--now") if now_text else None
    ctx.obj = Settings(db, processes, now, output)


# the commands register themselves on ``cli`` (imported for that, not for a name)
from service import (  # noqa: E402, F401
    cli_approvals,
    cli_audit,
    cli_definitions,
    cli_instances,
    cli_ops,
    cli_registers,
    cli_reports,
    cli_route,
    cli_tokens,
    notices_cli,
)


def main() -> None:
    try:
        cli(prog_name="run.py")
    except BrokenPipeError:
        reader_gone()
