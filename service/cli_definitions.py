"""Commands on definitions and the org: validate, deploy, schema, users, graph."""

from __future__ import annotations

import json
from pathlib import Path

import click

from service.cli import cli
from service.cli_base import (
    Settings,
    after_option,
    emit,
    limit_option,
    output_option,
    pass_settings,
    print_page,
    print_table,
    refusals,
)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_settings
def validate(settings: Settings, paths: tuple[Path, ...]) -> None:
    """Check process, org, calendar and register files; print every problem as
    path:line:col: message."""
    from service.queries import validate_files

    with refusals():
        counts = validate_files(paths, settings.processes)
    registers = f", {counts['registers']} register(s)" if counts["registers"] else ""
    click.echo(
        f"ok: {counts['processes']} process(es), org with {counts['users']} users, "
        f"{counts['calendars']} calendar(s){registers}, {counts['reports']} report(s)"
    )


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--as", "user", default="system", show_default=True, help="Who deploys (for the audit)."
)
@output_option
@pass_settings
def deploy(settings: Settings, paths: tuple[Path, ...], user: str, output: str) -> None:
    """Validate and store process definitions as new versions (unchanged files are no-ops).

    Without PATHS, deploys everything in --processes. Running instances keep the version
    they started on.
    """
    from service.queries import deploy_rows, require_yaml

    with refusals():
        require_yaml(paths or (settings.processes,))  # before a database is created for it
        rows = deploy_rows(settings.workflow(create=True), paths, user, settings.at())
    emit(output, rows, lambda: print_table(rows, ["process", "version", "status", "file"]))


@cli.command()
@click.option(
    "--kind",
    type=click.Choice(["process", "org", "calendar", "register", "report"]),
    default="process",
    show_default=True,
)
def schema(kind: str) -> None:
    """Print the JSON Schema of a YAML file kind (for editors: yaml-language-server)."""
    from service.schemas import json_schema

    click.echo(json.dumps(json_schema(kind), ensure_ascii=False, indent=2))


@cli.command()
@limit_option
@after_option("users")
@output_option
@pass_settings
def users(settings: Settings, limit: int, after: str | None, output: str) -> None:
    """List the org directory by user id: users, their roles, departments, managers, and who
    stands in for them."""
    from service.queries import user_rows

    with refusals():
        page = user_rows(settings.processes, limit, after)  # files only: no database needed
    columns = ["id", "name", "roles", "departments", "manager", "active", "delegate"]
    print_page(output, page, columns)


@cli.command()
@click.argument("process")
@pass_settings
def graph(settings: Settings, process: str) -> None:
    """Print a process as a Mermaid stateDiagram-v2 (from the deployed or the on-disk file)."""
    from service.queries import process_graph

    with refusals():
        click.echo(process_graph(settings.processes, process, settings.workflow_if_any()))
