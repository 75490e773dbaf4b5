"""What every command of service/cli.py shares: settings, options, refusals and output.

Exit status: 0 success, 1 refused or invalid (one line on stderr saying why), 2 usage.
Kept free of heavy imports (the engine, SQLAlchemy): ``--help`` and every subcommand's
parsing go through here, and a command imports what it needs when it runs.
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from service.display import display_tz, jsonable, plain_decimal

if TYPE_CHECKING:
    from service.queries import Rows
    from service.workflow import Workflow

DEFAULT_DB = "sqlite:///shenpi.db"


class Settings:
    def __init__(
        self, db: str, processes: Path, now: datetime | None, output: str | None = None
    ) -> None:
        self.db = db
        self.processes = processes
        self.now = now
        self.output = output  # -o before the subcommand; the subcommand's own -o wins
        self._workflow: Workflow | None = None

    def workflow(self, *, create: bool = False) -> Workflow:
        """The facade on --db. Only ``deploy`` and ``serve`` pass ``create``: every other
        command refuses a missing database rather than leave an empty one (and its
        folders) behind a typo in --db."""
        if self._workflow is None:
            from service.workflow import Workflow

            self._workflow = Workflow.open(self.db, self.processes, create=create)
        return self._workflow

    def workflow_if_any(self) -> Workflow | None:
        """The facade, or None when --db names no database yet (for views that can fall
        back to the files in --processes)."""
        from engine.errors import NoDatabase

        try:
            return self.workflow()
        except NoDatabase:
            return None

    def at(self) -> datetime:
        """The instant this command runs as of: --now, else the real clock."""
        return self.now or self.workflow().clock()


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@contextmanager
def refusals() -> Iterator[None]:
    """Turn every expected error into one line on stderr and exit 1; never a traceback."""
    from engine.errors import DefinitionError, ShenpiError

    try:
        yield
    except DefinitionError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    except ShenpiError as exc:
        fail(str(exc))
    except BrokenPipeError:
        reader_gone()
    except OSError as exc:  # e.g. a --db file in a folder that cannot be created
        fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    except UnicodeError:
        # the value layer names the field for what it checks; this catches text from
        # undecodable argv bytes on paths it does not (e.g. a query filter)
        fail("an argument is not valid UTF-8 text; give it in UTF-8")
    except Exception as exc:
        database_error = _database_error(exc)
        if database_error is None:
            raise
        fail(database_error)


def _database_error(exc: Exception) -> str | None:
    """The one line for a database error, or None if ``exc`` is none. SQLAlchemy is only
    imported by commands that open a database; if it is not loaded, this is no error of it."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(exc, sa_exc.SQLAlchemyError):
        return None
    orig = getattr(exc, "orig", None)
    first = str(orig if orig else exc).strip().splitlines()
    return f"database: {first[0] if first else type(exc).__name__}"


MIN_YEAR, MAX_YEAR = 1900, 9000  # documented in docs/yaml-reference.md (limits)


def parse_time(value: str, what: str) -> datetime:
    """An ISO 8601 instant within the documented years, as written and in UTC alike
    (``9000-12-31T23:59-23:59`` is already 9001 in UTC)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{what}: expected ISO 8601, e.g. 2026-09-30T10:00+08:00"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=display_tz())
    # the written year first: only then is the conversion to UTC safe from overflow
    if not MIN_YEAR <= moment.year <= MAX_YEAR or not (
        MIN_YEAR <= moment.astimezone(UTC).year <= MAX_YEAR
    ):
        raise click.BadParameter(
            f"{what}: {value} is outside the years {MIN_YEAR}-{MAX_YEAR} (in UTC too)"
        )
    return moment


def parse_sets(pairs: Sequence[str], data_file: str | None) -> dict[str, Any]:
    """--data then --set; the JSON is read by the value layer's rules (exact numbers,
    no duplicate keys, bounded size and depth)."""
    from engine.errors import InvalidData
    from engine.values import MAX_JSON_BYTES, load_json_object

    data: dict[str, Any] = {}
    if data_file:
        try:
            with open(data_file, encoding="utf-8") as fh:
                text = fh.read(MAX_JSON_BYTES + 1)
            data.update(load_json_object(text, f"--data {data_file}"))
        except OSError as exc:
            fail(f"--data {data_file}: {exc.strerror or exc}")
        except UnicodeDecodeError as exc:
            fail(f"--data {data_file}: not UTF-8 ({exc.reason} at byte {exc.start})")
        except InvalidData as exc:
            fail(str(exc))
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"--set {pair!r}: expected key=value")
        data[key.strip()] = value
    return data


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def print_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], full: Collection[str] = ()
) -> None:
    """A text table; cells are cut at 60 characters except in the ``full`` columns (a
    reason or a comment is read whole, so those go last)."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[cell(r.get(c), c in full) for c in columns] for r in rows]
    widths = [max(_width(c), *(_width(row[i]) for row in cells)) for i, c in enumerate(columns)]
    click.echo(
        "  ".join(
            c.upper() + " " * (w - _width(c)) for c, w in zip(columns, widths, strict=True)
        ).rstrip()
    )
    for row in cells:
        click.echo(
            "  ".join(v + " " * (w - _width(v)) for v, w in zip(row, widths, strict=True)).rstrip()
        )


def cell(value: Any, full: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=jsonable)
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, datetime):
        return str(jsonable(value))
    text = str(value).replace("\n", " ")
    return text if full or len(text) <= 60 else text[:57] + "..."


def emit(output: str, data: Any, render: Callable[[], None]) -> None:
    if output == "json":
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=jsonable))
    else:
        render()


OUTPUT_CHOICES = ("table", "json")
OUTPUT_HELP = "Output format: table or json [default: table]."
DB_HELP = "Database URL: sqlite:///FILE or postgresql://user@host/db (env SHENPI_DB)."
PROCESSES_HELP = "Folder with the process YAML files and org.yaml (env SHENPI_PROCESSES)."
NOW_HELP = (
    "Run as of this instant (ISO 8601; no offset = the display zone, env SHENPI_TZ, default "
    "Asia/Shanghai). For simulation, tests and back-filled entries; the audit log keeps the "
    "real recorded time too."
)
PROCESSES_TYPE = click.Path(file_okay=False, path_type=Path)


def _resolve_output(ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    """A command's own ``-o``, else the one given before the subcommand, else table."""
    if value is not None:
        return value
    settings = ctx.find_object(Settings)
    return (settings.output if settings is not None else None) or "table"


output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_CHOICES),
    default=None,
    callback=_resolve_output,
    help=OUTPUT_HELP,
)
pass_settings = click.make_pass_decorator(Settings)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def usage_error(ctx: click.Context, message: str) -> NoReturn:
    """A bad option value: one line on stderr and exit 2 (click's own would add usage)."""
    click.echo(f"error: {message}", err=True)
    ctx.exit(2)
    raise AssertionError("unreachable")  # pragma: no cover


def _limit(ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        usage_error(ctx, f"--limit: expected a whole number from 1 to {MAX_LIMIT}, not {value!r}")
    return limit


limit_option = click.option(
    "--limit",
    default=str(DEFAULT_LIMIT),
    show_default=True,
    callback=_limit,
    metavar="N",
    help=f"At most N rows (1-{MAX_LIMIT}); if there are more, stderr ends with "
    "'next: --after CURSOR'.",
)


def after_option(kind: str, *also: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--after CURSOR for one listing (or one of several a command prints, ``also``); a
    cursor of another listing or a mangled one is a usage error, found before the
    database is opened."""

    def check(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        from engine.errors import InvalidData
        from service.queries import check_cursor

        for other in also:
            try:
                check_cursor(other, value)
                return value
            except InvalidData:
                pass
        try:
            check_cursor(kind, value)
        except InvalidData as exc:
            usage_error(ctx, str(exc))
        return value

    return click.option(
        "--after",
        metavar="CURSOR",
        callback=check,
        help="Continue after the page that printed 'next: --after CURSOR'.",
    )


def emit_page(
    output: str, rows: list[dict[str, Any]], nxt: str | None, render: Callable[[], None]
) -> None:
    """Every list command: the rows (a table, or the JSON array scripts already parse) on
    stdout and, when there are more, one line 'next: --after CURSOR' on stderr."""
    emit(output, rows, render)
    if nxt is not None:
        click.echo(f"next: --after {nxt}", err=True)


def print_page(output: str, page: Rows, columns: Sequence[str], full: Collection[str] = ()) -> None:
    """A listing's page as a table of ``columns`` (or JSON), and the next cursor if any."""
    emit_page(output, page.items, page.next, lambda: print_table(page.items, columns, full))


def _override(attribute: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """A subcommand's copy of a global option: when given, it replaces the group's value."""

    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        settings = ctx.find_object(Settings)
        if value is None or settings is None:
            return
        if attribute == "now":
            value = parse_time(value, "--now")
        setattr(settings, attribute, value)

    return store


def _global_options() -> list[click.Parameter]:
    """Fresh copies of --db, --processes and --now for one subcommand (no env, no default:
    those are the group's, so a value here is always one the user typed)."""
    return [
        click.Option(["--db"], callback=_override("db"), expose_value=False, help=DB_HELP),
        click.Option(
            ["--processes"],
            type=PROCESSES_TYPE,
            callback=_override("processes"),
            expose_value=False,
            help=PROCESSES_HELP,
        ),
        click.Option(["--now"], callback=_override("now"), expose_value=False, help=NOW_HELP),
    ]


class ShenpiGroup(click.Group):
    """Gives every subcommand the global options, so they work after it too."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.extend(_global_options())
        super().add_command(cmd, name)


def reader_gone() -> NoReturn:
    """The reader of stdout stopped early (``run.py show X | head``): exit 1 without a
    message, as click does for the commands that print outside ``refusals``, and keep
    Python's own flush at exit from raising again on the closed pipe."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)
