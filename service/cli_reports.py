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
from service.reports import BUILT_IN

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
@click.option("--list", "list_only", is_flag=True, help="List the reports (as without NAME).")
@click.option("--from", "since_text", help="Period start (ISO 8601; default: last month's 1st).")
@click.option("--to", "until_text", help="Period end, exclusive (default: this month's 1st).")
@click.option("--process", help="Only this process (built-in reports).")
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
    list_only: bool,
    since_text: str | None,
    until_text: str | None,
    process: str | None,
    output: str | None,
    out_file: Path | None,
) -> None:
    """Run a report: a built-in one (outcomes, on-time, durations, overdue, escalations,
    summary) or one defined in a `report:` file of the processes folder.

    Without NAME (or with --list), list the reports. The period is [--from, --to): by
    default the last full calendar month in the display zone (SHENPI_TZ), so the report
    run on the 1st covers the month just ended. 'overdue' and 'open' are as of --now.
    """
    from service.reports import build_report

    output = output or settings.output or "table"
    with refusals():
        if name is None or list_only:
            _list(settings, output, out_file)
            return
        now = settings.at()
        default_since, default_until = _month_before(now)
        since = parse_time(since_text, "--from") if since_text else default_since
        until = parse_time(until_text, "--to") if until_text else default_until
        workflow = settings.workflow()
        if name in BUILT_IN:
            known = {d["process"] for d in workflow.store.list_definitions()}
            result = build_report(workflow.store, name, since, until, now, process, known)
        else:
            from service.ownerreports import (
                find_report,
                procs_of,
                run_owner_report,
                workflow_reports,
            )

            owned = find_report(workflow_reports(workflow), name)
            if process is not None:
                fail(f"report {name!r} names its own processes: --process is for built-in ones")
            result = run_owner_report(
                workflow.store,
                owned,
                procs_of(workflow, owned),
                since,
                until,
                now,
                display_tz(),
                registers=workflow.catalog.registers,
            )
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


@cli.command("reports")
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default=None, help="table or json."
)
@pass_settings
def reports_command(settings: Settings, output: str | None) -> None:
    """List the reports: built-in ones and those of `report:` files in --processes."""
    with refusals():
        _list(settings, output or settings.output or "table", None)


def _list(settings: Settings, output: str, out_file: Path | None) -> None:
    from service.reports import report_names

    rows = [r | {"source": "built-in", "schedule": "", "send_to": ""} for r in report_names()]
    workflow = settings.workflow_if_any()
    if workflow is not None:
        from service.ownerreports import workflow_reports

        for name, owned in sorted(workflow_reports(workflow).items()):
            sched = owned.spec.schedule
            rows.append(
                {
                    "report": name,
                    "title": owned.spec.title,
                    "source": owned.file
                    + (f" (not deployed: {', '.join(owned.missing)})" if owned.missing else ""),
                    "schedule": " | ".join(sched.crons) if sched else "",
                    "send_to": ", ".join(sched.send_to) if sched else "",
                }
            )
    if output == "json":
        _write(out_file, json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        print_table(rows, ["report", "title", "source", "schedule", "send_to"])


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
