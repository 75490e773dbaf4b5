"""``python run.py ...``: the command-line contract for people and scripts.

Exit status: 0 success, 1 refused or invalid (one line on stderr saying why), 2 usage.
Heavy imports (SQLAlchemy, the engine) happen inside commands so ``--help`` is instant.

The global options (``--db``, ``--processes``, ``--now``, ``-o``) may be written before the
subcommand or after it (``show X --db URL``): people put them where they think of them, and
a usage error for that teaches nothing. After the subcommand they win over before.
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from service.display import DisplayZoneError, display_tz, jsonable, plain_decimal

if TYPE_CHECKING:
    from engine.records import TaskRecord
    from service.workflow import Workflow
    from storage.auditchain import AuditHead

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
            from storage.db import open_database
            from storage.store import Store

            self._workflow = Workflow(Store(open_database(self.db, create=create)), self.processes)
        return self._workflow

    def at(self) -> datetime:
        """The instant this command runs as of: --now, else the real clock."""
        return self.now or self.workflow().clock()


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@contextmanager
def refusals() -> Iterator[None]:
    """Turn every expected error into one line on stderr and exit 1; never a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    from engine.errors import DefinitionError, ShenpiError

    try:
        yield
    except DefinitionError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    except ShenpiError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        first = str(exc.orig if getattr(exc, "orig", None) else exc).strip().splitlines()
        fail(f"database: {first[0] if first else type(exc).__name__}")
    except BrokenPipeError:
        _reader_gone()
    except OSError as exc:  # e.g. a --db file in a folder that cannot be created
        fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    except UnicodeError:
        # the value layer names the field for what it checks; this catches text from
        # undecodable argv bytes on paths it does not (e.g. a query filter)
        fail("an argument is not valid UTF-8 text; give it in UTF-8")


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


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        click.echo("(none)")
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
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


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=jsonable)
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, datetime):
        return str(jsonable(value))
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


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


def _usage_error(ctx: click.Context, message: str) -> NoReturn:
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
        _usage_error(ctx, f"--limit: expected a whole number from 1 to {MAX_LIMIT}, not {value!r}")
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


def after_option(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--after CURSOR for one listing; a cursor of another listing or a mangled one is a
    usage error, found before the database is opened."""

    def check(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        from engine.errors import InvalidData
        from storage.paging import decode

        try:
            decode(kind, value)
        except InvalidData as exc:
            _usage_error(ctx, str(exc))
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


# --------------------------------------------------------------------------- definitions


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_settings
def validate(settings: Settings, paths: tuple[Path, ...]) -> None:
    """Check process, org and calendar files; print every problem as path:line:col: message."""
    from engine.catalog import load_catalog

    with refusals():
        _require_yaml(paths)
        catalog = load_catalog(paths, settings.processes / "org.yaml")
    click.echo(
        f"ok: {len(catalog.processes)} process(es), org with {len(catalog.org.users)} users, "
        f"{len(catalog.calendars)} calendar(s)"
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
    with refusals():
        _require_yaml(paths or (settings.processes,))
        result = settings.workflow(create=True).deploy(list(paths), by=user, now=settings.at())
    rows = [
        {
            "process": d.process,
            "version": d.version,
            "status": "deployed" if d.created else "unchanged",
            "file": d.file,
        }
        for d in result
    ]
    emit(output, rows, lambda: print_table(rows, ["process", "version", "status", "file"]))


def _require_yaml(paths: Sequence[Path]) -> None:
    """A folder without YAML (a wrong path, a typo) must not pass as "ok: 0 processes"."""
    from engine.catalog import yaml_files
    from engine.errors import WorkflowError

    if not yaml_files(paths):
        named = ", ".join(str(p) for p in paths)
        raise WorkflowError(f"no YAML files (*.yaml, *.yml) in {named}; check the path")


@cli.command()
@click.option(
    "--kind",
    type=click.Choice(["process", "org", "calendar"]),
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
    """List the org directory by user id: users, their roles, and who stands in for them."""
    from service.workflow import org_catalog
    from storage.paging import decode, encode

    with refusals():
        org = org_catalog(settings.processes).org  # files only: no database needed
    start = decode("users", after)[0] if after is not None else None
    ids = sorted(uid for uid in org.users if start is None or uid > start)
    rows = [
        {
            "id": uid,
            "name": org.users[uid].name,
            "roles": list(org.users[uid].roles),
            "active": org.users[uid].active,
            "delegate": org.users[uid].delegate,
            "email": org.users[uid].contacts.email,
        }
        for uid in ids[:limit]
    ]
    nxt = encode("users", rows[-1]["id"]) if len(ids) > limit else None
    emit_page(
        output, rows, nxt, lambda: print_table(rows, ["id", "name", "roles", "active", "delegate"])
    )


@cli.command()
@click.argument("process")
@pass_settings
def graph(settings: Settings, process: str) -> None:
    """Print a process as a Mermaid stateDiagram-v2 (from the deployed or the on-disk file)."""
    from service.graph import mermaid

    with refusals():
        click.echo(mermaid(_definition(settings, process).spec))


def _definition(settings: Settings, process: str) -> Any:
    """The latest deployed version, else the file in --processes (graph works before deploy)."""
    from engine.catalog import load_catalog
    from engine.errors import NoDatabase, NotFound

    try:
        return settings.workflow().process(process)
    except (NotFound, NoDatabase):
        catalog = load_catalog([settings.processes])
        if process not in catalog.processes:
            known = ", ".join(sorted(catalog.processes)) or "none"
            raise NotFound(
                "process", process, f"neither deployed nor in {settings.processes} ({known})"
            ) from None
        return catalog.processes[process]


# --------------------------------------------------------------------------- runtime

set_option = click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="A variable value (repeatable).",
)
data_option = click.option(
    "--data",
    "data_file",
    type=click.Path(dir_okay=False),
    help="A JSON file with variable values.",
)


@cli.command()
@click.argument("process")
@click.option("--as", "user", required=True, help="The requester's user id.")
@set_option
@data_option
@output_option
@pass_settings
def start(
    settings: Settings,
    process: str,
    user: str,
    sets: tuple[str, ...],
    data_file: str | None,
    output: str,
) -> None:
    """Start an instance of PROCESS and print it."""
    data = parse_sets(sets, data_file)
    with refusals():
        snapshot = settings.workflow().start(process, user, data, settings.at())
        _show(settings, snapshot.id, user, output)


@cli.command()
@click.option("--as", "user", help="Only tasks this user may act on now.")
@click.option("--role", help="Only tasks waiting for this role.")
@click.option("--process", help="Only tasks of this process.")
@click.option(
    "--all",
    "include_closed",
    is_flag=True,
    help="Include decided and cancelled tasks (without --as/--role: those list open tasks).",
)
@click.option("--overdue", is_flag=True, help="Only open tasks past their due time.")
@limit_option
@after_option("tasks")
@output_option
@pass_settings
def tasks(
    settings: Settings,
    user: str | None,
    role: str | None,
    process: str | None,
    include_closed: bool,
    overdue: bool,
    limit: int,
    after: str | None,
    output: str,
) -> None:
    """List open tasks by due time, undated last (the ones USER may act on, with --as)."""
    from service.views import task_json

    with refusals():
        wf = settings.workflow()
        now = settings.at()
        page = wf.tasks(
            user=user,
            role=role,
            process=process,
            include_closed=include_closed,
            overdue_at=now if overdue else None,
            limit=limit,
            after=after,
        )
        titles = _task_titles(wf, page.items)
        rows = [task_json(t, now, titles.get(t.id)) for t in page.items]
    emit_page(
        output,
        rows,
        page.next,
        lambda: print_table(
            rows, ["id", "process", "state", "role", "status", "actions", "due_at", "instance_id"]
        ),
    )


def _state_titles(proc: Any) -> dict[str, str]:
    """Each state's task title as the definition gives it (the state's title otherwise)."""
    return {
        name: (st.task.title if st.task and st.task.title else st.title)
        for name, st in proc.spec.states.items()
    }


def _task_titles(wf: Workflow, found: Sequence[TaskRecord]) -> dict[str, str]:
    """Task id -> title, from the process version each task's instance runs on."""
    versions = wf.store.instance_versions({t.instance_id for t in found})
    by_version: dict[tuple[str, int], dict[str, str]] = {}
    titles: dict[str, str] = {}
    for task in found:
        key = versions.get(task.instance_id)
        if key is None:
            continue
        if key not in by_version:
            by_version[key] = _state_titles(wf.process(*key))
        title = by_version[key].get(task.state)
        if title:
            titles[task.id] = title
    return titles


def _variable_types(proc: Any) -> dict[str, Any]:
    return {name: var.type for name, var in proc.spec.variables.items()}


@cli.command()
@click.argument("task_id")
@click.argument("action")
@click.option("--as", "user", required=True, help="Who acts.")
@click.option("--comment", help="A comment for the record.")
@set_option
@data_option
@output_option
@pass_settings
def act(
    settings: Settings,
    task_id: str,
    action: str,
    user: str,
    comment: str | None,
    sets: tuple[str, ...],
    data_file: str | None,
    output: str,
) -> None:
    """Take ACTION on TASK_ID and print the instance afterwards."""
    data = parse_sets(sets, data_file)
    with refusals():
        # settings.now, not at(): without --now the Workflow reads the clock itself
        snapshot = settings.workflow().act(task_id, action, user, data, comment, settings.now)
        _show(settings, snapshot.id, user, output)


@cli.command()
@click.argument("instance_id")
@click.option("--as", "viewer", help="Show as this user sees it (confidential fields masked).")
@output_option
@pass_settings
def show(settings: Settings, instance_id: str, viewer: str | None, output: str) -> None:
    """Show an instance: state, variables, open tasks with their actions, and history."""
    with refusals():
        _show(settings, instance_id, viewer, output)


def _show(settings: Settings, instance_id: str, viewer: str | None, output: str) -> None:
    from engine.values import check_name
    from service.display import iso, plain_decimal
    from service.views import audit_json, display_variables, instance_json, task_json

    check_name("instance id", instance_id)
    wf = settings.workflow()
    now = settings.at()
    snapshot = wf.store.load_snapshot(instance_id)
    proc = wf.process(snapshot.process, snapshot.version)
    titles = _state_titles(proc)
    tasks = [task_json(t, now, titles.get(t.state)) for t in snapshot.tasks]
    history = wf.visible_history(
        snapshot, [audit_json(r) for r in wf.store.query_audit(instance_id=instance_id)], viewer
    )
    variables = display_variables(
        _variable_types(proc), wf.visible_variables(snapshot, viewer, now)
    )
    # the SLA clock is stored in the calendar's zone; shown in the display zone like every time
    deadlines = wf.deadlines(snapshot, time=iso, number=plain_decimal)
    for timer in deadlines["timers"]:
        for key in ("due_at", "fired_at"):
            timer[key] = iso(timer[key])
    sla = deadlines["instance_deadline"]
    data = instance_json(snapshot, variables, tasks, history=history, deadlines=deadlines)
    if output == "json":
        emit(output, data, lambda: None)
        return
    click.echo(f"instance {snapshot.id}  {snapshot.process} v{snapshot.version}")
    click.echo(f"state    {snapshot.state} ({titles.get(snapshot.state) or '-'})")
    click.echo(
        f"status   {snapshot.status}" + (f" ({snapshot.outcome})" if snapshot.outcome else "")
    )
    click.echo(f"by       {snapshot.requester} at {data['created_at']}")
    click.echo("variables:")
    for key, value in variables.items():
        click.echo(f"  {key}: {_cell(value)}")
    click.echo("open tasks:")
    print_table(tasks, ["id", "title", "role", "actions", "due_at", "overdue"])
    clock = snapshot.sla
    if sla and clock:
        extended = len(clock.extensions)
        provisional = "; provisional" if sla["provisional"] else ""
        click.echo(
            f"deadline {sla['due_at']} ({clock.phase}; extended {extended} time(s){provisional})"
        )
    for warning in deadlines["calendar_warnings"]:
        click.echo(f"warning: {warning}")
    if deadlines["timers"]:
        click.echo("timers:")
        print_table(
            deadlines["timers"], ["kind", "level", "due_at", "status", "fired_at", "task_id"]
        )
    click.echo("history:")
    print_table(history, ["seq", "at", "actor", "on_behalf_of", "action", "from_state", "to_state"])


@cli.command()
@click.option("--process", help="Only this process.")
@click.option("--state", help="Only instances in this state.")
@click.option("--status", type=click.Choice(["active", "completed"]), help="Only this status.")
@limit_option
@after_option("instances")
@output_option
@pass_settings
def instances(
    settings: Settings,
    process: str | None,
    state: str | None,
    status: str | None,
    limit: int,
    after: str | None,
    output: str,
) -> None:
    """List instances, oldest first."""
    from service.views import display_variables, instance_json

    with refusals():
        wf = settings.workflow()
        page = wf.store.instance_page(
            process=process, state=state, status=status, limit=limit, after=after
        )
        types = {
            key: _variable_types(wf.process(*key))
            for key in {(s.process, s.version) for s in page.items}
        }
    rows = [
        instance_json(s, display_variables(types[(s.process, s.version)], s.variables), [])
        for s in page.items
    ]
    emit_page(
        output,
        rows,
        page.next,
        lambda: print_table(
            rows, ["id", "process", "version", "state", "status", "requester", "updated_at"]
        ),
    )


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
    from service.views import audit_json

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
        store = settings.workflow().store
        if verify:
            check = store.check_audit(head, require_key)
            for problem in check.problems:
                click.echo(problem, err=True)
            if check.problems:
                sys.exit(1)
            for line in check.summary():
                click.echo(line)
            return
        page = store.audit_page(
            instance_id=instance_id,
            actor=actor,
            action=action,
            process=process,
            since=since_at,
            until=until_at,
            limit=limit,
            after=after,
        )
        rows = [audit_json(r) for r in page.items]
    emit_page(
        output,
        rows,
        page.next,
        lambda: print_table(
            rows,
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
            ],
        ),
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
    from service.views import iso

    with refusals():
        store = settings.workflow().store
        head, unkeyed = store.audit_head()
        taken = settings.at()
    data = {
        "head": head.token(),
        "seq": head.seq,
        "entries": head.entries,
        "chains": head.chains,
        "digest": head.digest,
        "unkeyed": unkeyed,
        "key_id": store.audit_keys.current,
        "taken_at": iso(taken),
    }

    def render() -> None:
        click.echo(data["head"])
        click.echo(
            f"seq {head.seq}, {head.entries} entries in {head.chains} chains, taken at "
            f"{data['taken_at']}"
        )
        if store.audit_keys.current is None:
            click.echo("keyed: no audit key configured (new entries get plain SHA-256)")
        else:
            click.echo(f"keyed: new entries get HMAC-SHA256 with key id {store.audit_keys.current}")
        if unkeyed:
            click.echo(f"unkeyed: {unkeyed} entries have plain SHA-256 hashes")

    emit(output, data, render)


CHANNELS_HELP = (
    "channels.yaml to send through (env SHENPI_CHANNELS; default: channels.yaml in "
    "--processes if present, else the console only)."
)
channels_option = click.option(
    "--channels", "channels_file", default=None, metavar="FILE", help=CHANNELS_HELP
)


def outlet_for(
    settings: Settings, channels_file: str | None, write: Callable[[str], None] | None = None
) -> Any:
    """The configured channels, loaded (secrets resolved) before anything runs, and the
    channel choices in org.yaml checked against them."""
    from engine.org import load_org
    from engine.yamlsafe import load_file
    from notifiers.outbox import Outlet
    from notifiers.routing import check_preferences, load

    console = write or (lambda m: click.echo(m, err=True))
    config = load(channels_file, settings.processes)
    org_file = settings.processes / "org.yaml"
    if config is not None and org_file.is_file():
        doc = load_file(org_file)
        check_preferences(load_org(doc), config, doc)
    return Outlet.of(config, console)


@cli.command()
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10_000))
@channels_option
@output_option
@pass_settings
def tick(settings: Settings, batch: int, channels_file: str | None, output: str) -> None:
    """Fire every due timer and scheduled run once, as of --now (or the clock), then send
    the outbox. Safe to run from several processes at once."""
    from notifiers.outbox import dispatch
    from service.timekeeper import tick as run_tick

    with refusals():
        outlet = outlet_for(settings, channels_file)
        wf = settings.workflow()
        now = settings.at()
        report = run_tick(wf, now, batch=batch)
        sent = dispatch(wf.store, wf.org, outlet, now, 10_000)
    data = report.as_dict() | {
        "notices_sent": sent.sent,
        "deliveries_retry": sent.retried,
        "deliveries_held": sent.held,
        "deliveries_dead": sent.dead,
    }
    emit(output, data, lambda: click.echo(" ".join(f"{k}={_cell(v)}" for k, v in data.items())))


@cli.command()
@click.argument("year", required=False, type=click.IntRange(1900, 2200))
@click.option("--name", "calendar_name", default="cn", show_default=True, help="Calendar to show.")
@output_option
@pass_settings
def calendar(settings: Settings, year: int | None, calendar_name: str, output: str) -> None:
    """List a year's non-working days and working weekend days (调休) of a calendar."""
    from service.workflow import org_catalog

    with refusals():
        catalog = org_catalog(settings.processes)  # files only: no database needed
        year = year or settings.at().astimezone(display_tz()).year
        cal = catalog.calendar(calendar_name)
        if calendar_name != "cn" and calendar_name not in catalog.calendars:
            from engine.errors import NotFound

            raise NotFound("calendar", calendar_name)
        known = cal.year_known(year)
        data = {
            "calendar": cal.name,
            "year": year,
            "timezone": str(cal.tz),
            "adjustments_known": known,
            "provisional": cal.is_provisional(year),
            "warnings": cal.warnings_for(
                datetime(year, 1, 1).date(), datetime(year, 12, 31).date()
            ),
            "non_working_days": [
                {"date": d.isoformat(), "name": n} for d, n in cal.non_working_days(year)
            ],
            "working_weekend_days": [d.isoformat() for d in cal.working_weekend_days(year)],
        }

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
@click.option("--once", is_flag=True, help="Deploy, run one tick and exit (for checks and cron).")
@channels_option
@pass_settings
def serve(settings: Settings, every: float, once: bool, channels_file: str | None) -> None:
    """Deploy the processes in --processes, then run the scheduler: every few seconds fire
    due timers and scheduled runs and send the outbox. Several serve processes may share a
    PostgreSQL database; each timer and scheduled run still happens once."""
    from service.scheduler import run_scheduler

    with refusals():
        outlet = outlet_for(settings, channels_file, print)
        wf = settings.workflow(create=True)
        result = wf.deploy([], by="system", now=settings.at())
        for d in result:
            status = "deployed" if d.created else "unchanged"
            click.echo(f"{d.process} v{d.version} {status}", err=True)
        run_scheduler(wf, every=every, once=once, fixed_now=settings.now, outlet=outlet)


from service import notices_cli  # noqa: E402, F401  (registers notices and channels)


def main() -> None:
    try:
        cli(prog_name="run.py")
    except BrokenPipeError:
        _reader_gone()


def _reader_gone() -> NoReturn:
    """The reader of stdout stopped early (``run.py show X | head``): exit 1 without a
    message, as click does for the commands that print outside ``refusals``, and keep
    Python's own flush at exit from raising again on the closed pipe."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)
