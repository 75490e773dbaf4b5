"""Commands on instances and tasks: start, tasks, act, show, instances."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from service.cli import cli
from service.cli_base import (
    Settings,
    after_option,
    cell,
    emit,
    limit_option,
    output_option,
    parse_sets,
    pass_settings,
    print_page,
    print_table,
    refusals,
    usage_error,
)

if TYPE_CHECKING:
    from engine.records import Snapshot
    from service.workflow import Workflow

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
    _step_then_show(
        settings, user, sets, data_file, output,
        lambda wf, data: wf.start(process, user, data, settings.at()),
    )  # fmt: skip


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
@click.option(
    "--done-by",
    metavar="USER",
    help="Instead: the tasks USER decided or signed, newest first, each with USER's action "
    "and comment (one row per signature in a countersign).",
)
@limit_option
@after_option("tasks", "done")
@output_option
@pass_settings
@click.pass_context
def tasks(
    ctx: click.Context,
    settings: Settings,
    user: str | None,
    role: str | None,
    process: str | None,
    include_closed: bool,
    overdue: bool,
    done_by: str | None,
    limit: int,
    after: str | None,
    output: str,
) -> None:
    """List open tasks by due time, undated last (the ones USER may act on, with --as).

    With --done-by USER: what USER decided, newest first (--as, --role, --process, --all
    and --overdue do not apply).
    """
    from service.queries import check_cursor, decision_rows, task_rows

    if done_by is not None:
        given = [
            f"--{name.replace('_', '-')}"
            for name in ("user", "role", "process", "include_closed", "overdue")
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        ]
        if given:
            usage_error(ctx, f"{', '.join(given).replace('--user', '--as')} cannot go with "
                        "--done-by")  # fmt: skip
        _check_after(ctx, check_cursor, "done", after)
        with refusals():
            page = decision_rows(settings.workflow(), done_by, limit=limit, after=after)
        print_page(
            output,
            page,
            ["at", "id", "process", "state", "action", "task_status", "comment"],
            full=("comment",),
        )
        return
    _check_after(ctx, check_cursor, "tasks", after)
    with refusals():
        wf = settings.workflow()
        page = task_rows(
            wf,
            settings.at(),
            user=user,
            role=role,
            process=process,
            include_closed=include_closed,
            overdue=overdue,
            limit=limit,
            after=after,
        )
    print_page(
        output,
        page,
        ["id", "process", "state", "role", "status", "actions", "due_at", "instance_id"],
    )


def _check_after(
    ctx: click.Context, check: Callable[[str, str], None], kind: str, after: str | None
) -> None:
    """``tasks`` prints two listings; a cursor of the other one is a usage error."""
    from engine.errors import InvalidData

    if after is None:
        return
    try:
        check(kind, after)
    except InvalidData as exc:
        usage_error(ctx, str(exc))


@cli.command()
@click.argument("task_ids", metavar="TASK_ID...", nargs=-1, required=True)
@click.argument("action")
@click.option("--as", "user", required=True, help="Who acts.")
@click.option("--comment", help="A comment for the record (the opinion, 审批意见).")
@set_option
@data_option
@output_option
@pass_settings
def act(
    settings: Settings,
    task_ids: tuple[str, ...],
    action: str,
    user: str,
    comment: str | None,
    sets: tuple[str, ...],
    data_file: str | None,
    output: str,
) -> None:
    """Take ACTION on TASK_ID and print the instance afterwards.

    With several task ids (批量: act T1 T2 T3 approve --as U), each task is its own
    transaction with the same comment and values, tried in order; one line per task says
    ok or why not, and the new state. Exit status 0 when every task went through, 1 when
    any was refused (the others are still applied). A bad batch as a whole (an id twice,
    an unknown user) is refused before any task is touched.
    """
    if len(task_ids) > 1:
        _act_many(settings, task_ids, action, user, comment, sets, data_file, output)
        return
    (task_id,) = task_ids
    _step_then_show(
        settings, user, sets, data_file, output,
        # settings.now, not at(): without --now the Workflow reads the clock itself
        lambda wf, data: wf.act(task_id, action, user, data, comment, settings.now),
    )  # fmt: skip


def _act_many(
    settings: Settings,
    task_ids: tuple[str, ...],
    action: str,
    user: str,
    comment: str | None,
    sets: tuple[str, ...],
    data_file: str | None,
    output: str,
) -> None:
    """The batch form of ``act``: a row per task, exit 1 if any was refused."""
    from service.batch import act_many, all_ok

    data = parse_sets(sets, data_file)
    with refusals():
        results = act_many(settings.workflow(), task_ids, action, user, data, comment, settings.now)
    rows = [r.to_json() for r in results]
    for row in rows:
        row["result"] = "ok" if row["ok"] else "refused"
    emit(
        output,
        [r.to_json() for r in results],
        lambda: print_table(
            rows,
            ["task_id", "result", "instance_id", "state", "status", "open_tasks", "error"],
            full=("error",),
        ),
    )
    if not all_ok(results):
        refused = sum(not r.ok for r in results)
        click.echo(f"error: {refused} of {len(results)} tasks refused", err=True)
        sys.exit(1)


def _step_then_show(
    settings: Settings,
    user: str,
    sets: tuple[str, ...],
    data_file: str | None,
    output: str,
    step: Callable[[Workflow, dict[str, Any]], Snapshot],
) -> None:
    """Read --data and --set, take the step, and print the instance as ``user`` sees it."""
    data = parse_sets(sets, data_file)
    with refusals():
        snapshot = step(settings.workflow(), data)
        _show(settings, snapshot.id, user, output)


@cli.command()
@click.argument("instance_id")
@click.option("--as", "viewer", help="Show as this user sees it (confidential fields masked).")
@output_option
@pass_settings
def show(settings: Settings, instance_id: str, viewer: str | None, output: str) -> None:
    """Show an instance: state, variables, open tasks with their actions, and history."""
    from engine.values import check_name

    with refusals():
        check_name("instance id", instance_id)  # before the database is opened
        _show(settings, instance_id, viewer, output)


def _show(settings: Settings, instance_id: str, viewer: str | None, output: str) -> None:
    from service.queries import instance_view

    wf = settings.workflow()
    view = instance_view(wf, instance_id, viewer, settings.at())
    data = view.data
    if output == "json":
        emit(output, data, lambda: None)
        return
    sla = data["deadlines"]["instance_deadline"]
    click.echo(f"instance {data['id']}  {data['process']} v{data['version']}")
    click.echo(f"state    {data['state']} ({view.state_title or '-'})")
    click.echo(f"status   {data['status']}" + (f" ({data['outcome']})" if data["outcome"] else ""))
    click.echo(f"by       {data['requester']} at {data['created_at']}")
    if data.get("cc"):
        click.echo(f"cc       {', '.join(r['user'] for r in data['cc'])}")
    parent = data.get("parent")
    if parent:
        click.echo(f"parent   {parent['id']}  {parent['process']} (started in {parent['state']})")
    if data.get("children"):
        click.echo("children:")
        print_table(data["children"], ["id", "process", "state", "wait", "status", "outcome"])
    click.echo("variables:")
    for key, value in data["variables"].items():
        click.echo(f"  {key}: {cell(value)}")
    click.echo("open tasks:")
    print_table(data["tasks"], ["id", "title", "role", "actions", "due_at", "overdue"])
    if sla:
        extended = len(sla["extensions"])
        provisional = "; provisional" if sla["provisional"] else ""
        click.echo(
            f"deadline {sla['due_at']} ({view.deadline_phase}; extended {extended} time(s)"
            f"{provisional})"
        )
    deadlines = data["deadlines"]
    for warning in deadlines["calendar_warnings"]:
        click.echo(f"warning: {warning}")
    if deadlines["timers"]:
        click.echo("timers:")
        print_table(
            deadlines["timers"], ["kind", "level", "due_at", "status", "fired_at", "task_id"]
        )
    click.echo("opinions:")
    print_table(
        data["opinions"],
        ["at", "actor", "on_behalf_of", "state", "action", "comment"],
        full=("comment",),
    )
    click.echo("history:")
    print_table(
        data["history"],
        ["seq", "at", "actor", "on_behalf_of", "action", "from_state", "to_state", "comment"],
    )


@cli.command()
@click.option("--process", help="Only this process.")
@click.option("--state", help="Only instances in this state.")
@click.option(
    "--status",
    type=click.Choice(["active", "completed", "withdrawn", "cancelled"]),
    help="Only this status (cancelled: a linked process its parent cancelled).",
)
@click.option(
    "--parent", metavar="ID", help="Only the instances instance ID started (linked processes)."
)
@click.option(
    "--requester",
    metavar="USER|me",
    help="Only requests started by USER ('me': the user of --as): my requests.",
)
@click.option(
    "--as",
    "viewer",
    metavar="USER",
    help="List as USER sees it (confidential fields masked); 'me' in --requester is USER.",
)
@limit_option
@after_option("instances")
@output_option
@pass_settings
@click.pass_context
def instances(
    ctx: click.Context,
    settings: Settings,
    process: str | None,
    state: str | None,
    status: str | None,
    requester: str | None,
    viewer: str | None,
    parent: str | None,
    limit: int,
    after: str | None,
    output: str,
) -> None:
    """List instances, oldest first (--requester me --as USER: USER's own requests;
    --parent ID: the children instance ID started)."""
    from service.queries import instance_rows

    if requester == "me":
        if viewer is None:
            usage_error(ctx, "--requester me needs --as USER (who 'me' is)")
        requester = viewer
    with refusals():
        page = instance_rows(
            settings.workflow(),
            process=process,
            state=state,
            status=status,
            requester=requester,
            viewer=viewer,
            parent=parent,
            limit=limit,
            after=after,
        )
    print_page(
        output, page, ["id", "process", "version", "state", "status", "requester", "updated_at"]
    )
