"""``audit``: query the append-only log, verify its hash chains, print its head."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from service.cli import cli
from service.cli_base import (
    Settings,
    after_option,
    emit,
    limit_option,
    output_option,
    parse_time,
    pass_settings,
    print_page,
    refusals,
)

if TYPE_CHECKING:
    from storage.auditchain import AuditHead


@cli.group(invoke_without_command=True)
@click.option("--instance", "instance_id", help="Only this instance.")
@click.option("--actor", help="Only entries by (or on behalf of) this user.")
@click.option("--action", help="Only this action (start, deploy, denied, route, ...).")
@click.option("--process", help="Only this process.")
@click.option("--since", help="From this time (ISO 8601, by effective time).")
@click.option("--until", help="Up to this time (ISO 8601, by effective time).")
@click.option("--verify", is_flag=True, help="Check the hash chains instead of listing.")
@click.option(
    "--head",
    "kept_head",
    metavar="FILE_OR_HEAD",
    help="With --verify: also check against a head printed earlier by 'audit head' "
    "(the shenpi-audit-head/1:... line, or a file holding it or its JSON).",
)
@click.option(
    "--require-key",
    is_flag=True,
    help="With --verify: entries with plain SHA-256 hashes are problems too.",
)
@limit_option
@after_option("audit")
@output_option
@pass_settings
@click.pass_context
def audit(
    ctx: click.Context,
    settings: Settings,
    instance_id: str | None,
    actor: str | None,
    action: str | None,
    process: str | None,
    since: str | None,
    until: str | None,
    verify: bool,
    kept_head: str | None,
    require_key: bool,
    limit: int,
    after: str | None,
    output: str,
) -> None:
    """Query the append-only audit log (or verify its hash chains with --verify).

    'audit head' prints what to keep outside the database; 'audit --verify --head KEPT'
    then also detects entries removed or rewritten up to it.
    """
    from service.queries import audit_rows, verify_audit

    if ctx.invoked_subcommand is not None:
        given = [
            f"--{name.replace('_', '-')}"
            for name in ctx.params
            if name != "output"
            and ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        ]
        if given:
            raise click.UsageError(
                f"{', '.join(given)} cannot go with 'audit {ctx.invoked_subcommand}'", ctx
            )
        if ctx.get_parameter_source("output") is not click.core.ParameterSource.DEFAULT:
            settings.output = output  # 'audit -o json head': the subcommand's default
        return
    if (kept_head or require_key) and not verify:
        raise click.UsageError("--head and --require-key go with --verify")
    head = _parse_head(kept_head) if kept_head else None
    since_at = parse_time(since, "--since") if since else None
    until_at = parse_time(until, "--until") if until else None
    with refusals():
        wf = settings.workflow()
        if verify:
            check = verify_audit(wf, head, require_key)
            for problem in check.problems:
                click.echo(problem, err=True)
            if check.problems:
                sys.exit(1)
            for line in check.summary():
                click.echo(line)
            return
        page = audit_rows(
            wf,
            instance_id=instance_id,
            actor=actor,
            action=action,
            process=process,
            since=since_at,
            until=until_at,
            limit=limit,
            after=after,
        )
    print_page(
        output,
        page,
        [
            "seq",
            "at",
            "actor",
            "on_behalf_of",
            "process",
            "instance_id",
            "action",
            "from_state",
            "to_state",
            "comment",
        ],
        full=("comment",),
    )


def _parse_head(value: str) -> AuditHead:
    """A head token, or a file with the token or the JSON 'audit head -o json' printed."""
    from storage.auditchain import HEAD_PREFIX, AuditHead

    text = value
    if not value.startswith(HEAD_PREFIX) and not value.lstrip().startswith("{"):
        try:
            text = Path(value).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise click.BadParameter(
                f"{value}: neither a {HEAD_PREFIX}:... line nor a readable file ({reason})",
                param_hint="--head",
            ) from None
    try:
        return AuditHead.parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--head") from None


@audit.command("head")
@output_option
@pass_settings
def audit_head(settings: Settings, output: str) -> None:
    """Print the log's head: copy it outside the database, check later with --verify --head.

    A digest over every chain's newest entry up to the highest seq, with counts. Kept
    somewhere the database's administrators cannot write, it shows later whether any
    entry up to that seq was removed or rewritten, with or without an audit key.
    """
    from service.queries import audit_head_view

    with refusals():
        wf = settings.workflow()
        data = audit_head_view(wf, settings.at())

    def render() -> None:
        click.echo(data["head"])
        click.echo(
            f"seq {data['seq']}, {data['entries']} entries in {data['chains']} chains, taken at "
            f"{data['taken_at']}"
        )
        if data["key_id"] is None:
            click.echo("keyed: no audit key configured (new entries get plain SHA-256)")
        else:
            click.echo(f"keyed: new entries get HMAC-SHA256 with key id {data['key_id']}")
        if data["unkeyed"]:
            click.echo(f"unkeyed: {data['unkeyed']} entries have plain SHA-256 hashes")

    emit(output, data, render)
