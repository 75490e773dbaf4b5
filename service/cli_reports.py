"""``report``: built-in reports over a period, as a table, JSON, CSV or one HTML file."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from service.cli import cli
from service.cli_base import (
    Settings,
    cell,
    fail,
    parse_time,
    pass_settings,
    print_table,
    refusals,
)
from service.display import display_tz, jsonable

if TYPE_CHECKING:
    from service.reports import Report

REPORT_OUTPUTS = ("table", "json", "csv", "html")


def _month_before(moment: datetime) -> tuple[datetime, datetime]:
    """The calendar month before the one ``moment`` falls in, in the display zone."""
    zone = display_tz()
    this_first = moment.astimezone(zone).date().replace(day=1)
    last_first = (this_first - timedelta(days=1)).replace(day=1)
    return (
        datetime.combine(last_first, time(), tzinfo=zone),
        datetime.combine(this_first, time(), tzinfo=zone),
    )


@cli.command()
@click.argument("name", required=False)
@click.option("--from", "since_text", help="Period start (ISO 8601; default: last month's 1st).")
@click.option("--to", "until_text", help="Period end, exclusive (default: this month's 1st).")
@click.option("--process", help="Only this process.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(REPORT_OUTPUTS),
    default=None,
    help="table, json, csv or html (one self-contained file with charts) [default: table].",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file instead of stdout.",
)
@pass_settings
def report(
    settings: Settings,
    name: str | None,
    since_text: str | None,
    until_text: str | None,
    process: str | None,
    output: str | None,
    out_file: Path | None,
) -> None:
    """Run a built-in report: outcomes, on-time, durations, overdue, escalations, summary.

    Without NAME, list the reports. The period is [--from, --to): by default the last
    full calendar month in the display zone (SHENPI_TZ), so the report run on the 1st
    covers the month just ended. 'overdue' is as of --now.
    """
    from service.reports import build_report, report_names

    output = output or settings.output or "table"
    with refusals():
        if name is None:
            rows = report_names()
            if output == "json":
                _write(out_file, json.dumps(rows, ensure_ascii=False, indent=2))
            else:
                print_table(rows, ["report", "title"])
            return
        now = settings.at()
        default_since, default_until = _month_before(now)
        since = parse_time(since_text, "--from") if since_text else default_since
        until = parse_time(until_text, "--to") if until_text else default_until
        workflow = settings.workflow()
        known = {d["process"] for d in workflow.store.list_definitions()}
        result = build_report(workflow.store, name, since, until, now, process, known)
        if output == "json":
            text = json.dumps(result.to_json(), ensure_ascii=False, indent=2, default=jsonable)
        elif output == "csv":
            text = _csv(result)
        elif output == "html":
            from service.reporthtml import render_html

            text = render_html(result, display_tz())
        else:
            if out_file is not None:
                fail("--out takes -o json, csv or html")
            _print_tables(result)
            return
        _write(out_file, text)


def _print_tables(result: Report) -> None:
    click.echo(f"{result.title}: {result.since.isoformat()} to {result.until.isoformat()}")
    for section in result.sections:
        click.echo("")
        click.echo(section.title)
        print_table(section.rows, list(section.columns))


def _csv(result: Report) -> str:
    """One CSV for every section: a ``section`` column first, then each section's own."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for section in result.sections:
        writer.writerow(["section", *section.columns])
        for row in section.rows:
            writer.writerow([section.title, *(_csv_cell(row.get(c)) for c in section.columns)])
    return buffer.getvalue()


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    return cell(value) if not isinstance(value, str) else value


def _write(out_file: Path | None, text: str) -> None:
    if out_file is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    out_file.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out_file}", err=True)
