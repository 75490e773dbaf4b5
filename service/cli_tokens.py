"""``tokens``: API tokens for the HTTP face (create shows the secret once; list; revoke)."""

from __future__ import annotations

import click

from service.cli import cli
from service.cli_base import (
    Settings,
    ShenpiGroup,
    emit,
    output_option,
    pass_settings,
    print_table,
    refusals,
)


@cli.group(cls=ShenpiGroup)  # --db and friends after 'tokens create' too
def tokens() -> None:
    """API tokens: each acts over HTTP as one user, within its scopes.

    Scopes: read (tasks, instances, definitions), act (start, decide), admin (operator
    views: every instance, the whole audit log and its verification).
    """


@tokens.command("create")
@click.argument("user")
@click.option(
    "--scopes",
    default="read,act",
    show_default=True,
    help="Comma-separated: read, act, admin.",
)
@click.option(
    "--expires",
    default="90d",
    show_default=True,
    help="A duration (30d, 12h, 45m), an ISO 8601 time, or 'never'.",
)
@click.option("--name", help="What the token is for (shown by 'tokens list').")
@output_option
@pass_settings
def create(
    settings: Settings, user: str, scopes: str, expires: str, name: str | None, output: str
) -> None:
    """Make a token acting as USER and print it ONCE (only its hash is stored)."""
    from service.display import iso
    from service.tokens import issue_token, parse_expiry, parse_scopes

    with refusals():
        wf = settings.workflow()
        now = settings.at()
        issued = issue_token(wf, user, parse_scopes(scopes), parse_expiry(expires, now), name, now)
    row = issued.row
    data = {
        "id": row.id,
        "token": issued.token,
        "user": row.user_id,
        "scopes": list(row.scopes),
        "expires_at": iso(row.expires_at),
    }

    def render() -> None:
        click.echo(issued.token)
        until = data["expires_at"] or "never expires"
        click.echo(
            f"token {row.id} for {row.user_id} ({','.join(row.scopes)}; {until}); "
            "this is the only time it is shown",
            err=True,
        )

    emit(output, data, render)


@tokens.command("list")
@click.option("--user", help="Only this user's tokens.")
@output_option
@pass_settings
def list_tokens(settings: Settings, user: str | None, output: str) -> None:
    """Every token (never its secret), oldest first, with its status."""
    from service.tokens import token_rows

    with refusals():
        rows = token_rows(settings.workflow(), settings.at(), user)
    emit(
        output,
        rows,
        lambda: print_table(
            rows, ["id", "user", "name", "scopes", "status", "expires_at", "last_used_at"]
        ),
    )


@tokens.command("revoke")
@click.argument("token_id", metavar="ID")
@pass_settings
def revoke(settings: Settings, token_id: str) -> None:
    """Revoke a token: from now on every request with it is refused (401)."""
    from service.tokens import revoke_token

    with refusals():
        row = revoke_token(settings.workflow(), token_id, settings.at())
    click.echo(f"token {row.id} of {row.user_id} revoked")
