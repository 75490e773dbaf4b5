"""``registers`` and ``register show|history|import``: the books processes keep (issue 12)."""

from __future__ import annotations

from pathlib import Path

import click

from service.cli import cli
from service.cli_base import (
    Settings,
    ShenpiGroup,
    emit,
    emit_page,
    limit_option,
    output_option,
    pass_settings,
    print_table,
    refusals,
)


@cli.command("registers")
@output_option
@pass_settings
def registers_cmd(settings: Settings, output: str) -> None:
    """List the registers: title, rows, version (bumped by every write), writers.

    Before any deploy (no database yet) the register files alone, all empty."""
    from engine.catalog import org_catalog
    from service.registers import list_registers

    with refusals():
        wf = settings.workflow_if_any()
        specs = org_catalog(settings.processes).registers if wf is None else None
        rows = list_registers(wf, specs)
    emit(
        output, rows, lambda: print_table(rows, ["register", "rows", "version", "writers", "title"])
    )


@cli.group(cls=ShenpiGroup)  # --db and friends after 'register show' too
def register() -> None:
    """One register: its rows, a row's history, the initial import (see docs/registers.md)."""


@register.command("show")
@click.argument("name")
@click.argument("key", required=False)
@limit_option
@click.option("--after", metavar="KEY", help="Rows after this key (the 'next:' of a page).")
@output_option
@pass_settings
def show(
    settings: Settings, name: str, key: str | None, limit: int, after: str | None, output: str
) -> None:
    """Every row of register NAME (by key, a page at a time), or the row KEY."""
    from service.registers import known_columns, show_row, show_rows, spec_of

    with refusals():
        wf = settings.workflow()
        spec = spec_of(wf, name)
        if key is not None:
            row = show_row(wf, name, key)
            fields = [{"field": k, "value": v} for k, v in row.items()]
            emit(output, row, lambda: print_table(fields, ["field", "value"], ["value"]))
            return
        rows, nxt = show_rows(wf, name, after, limit)
    emit_page(output, rows, nxt, lambda: print_table(rows, known_columns(spec)))


@register.command("history")
@click.argument("name")
@click.argument("key")
@output_option
@pass_settings
def history_cmd(settings: Settings, name: str, key: str, output: str) -> None:
    """Every version of row KEY of register NAME: when, who, which instance, old -> new."""
    from service.registers import changes_text, history

    with refusals():
        rows = history(settings.workflow(), name, key)
    table = [r | {"changes": changes_text(r["changes"])} for r in rows]
    columns = ["version", "at", "actor", "action", "instance_id", "changes"]
    emit(output, rows, lambda: print_table(table, columns, ["changes"]))


@register.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), help="Default: the file's suffix."
)
@click.option("--as", "user", required=True, help="Who imports (named in the audit).")
@click.option("--comment", help="Why (kept in the audit entry).")
@output_option
@pass_settings
def import_cmd(
    settings: Settings,
    name: str,
    file: Path,
    fmt: str | None,
    user: str,
    comment: str | None,
    output: str,
) -> None:
    """Load the initial book of register NAME from FILE (CSV with a header, or a JSON
    array of objects). Every row is checked first; nothing is written if any is bad.
    Only a holder of a role the register lists under 'importers' may import."""
    from engine.values import check_name, check_text
    from service.registers import import_file

    with refusals():
        check_name("user", user)
        if comment is not None:
            check_text("comment", comment)
        wf = settings.workflow()
        done = import_file(wf, name, file, fmt, user, settings.at(), comment)

    def render() -> None:
        click.echo(
            f"imported {done['rows']} row(s) into {name} ({done['new']} new), versions "
            f"{done['versions'][0]}-{done['versions'][1]}, sha256 {done['sha256']}"
        )

    emit(output, done, render)
