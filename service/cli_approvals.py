"""What people do around a task besides deciding it: withdraw, cc, transfer, remind, claim.

Each command is one step on the instance (atomic, audited, notified); a refusal prints
one line, exits 1 and leaves only a ``denied`` entry in the audit log. Output: one line
saying what happened, or with ``-o json`` the instance as the acting user sees it (the
shape of ``show -o json``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from service.cli import cli
from service.cli_base import Settings, emit, output_option, pass_settings, refusals

if TYPE_CHECKING:
    from engine.records import Snapshot
    from service.workflow import Workflow

as_option = click.option("--as", "user", required=True, help="Who does it (your user id).")
comment_option = click.option("--comment", help="A comment for the record and the notice.")


def _run(
    settings: Settings,
    user: str,
    output: str,
    step: Callable[[Workflow], Snapshot],
    line: Callable[[Snapshot], str],
) -> None:
    """Take the step, then print ``line`` (table) or the instance as ``user`` sees it."""
    from service.queries import instance_view

    with refusals():
        wf = settings.workflow()
        snapshot = step(wf)
        data = instance_view(wf, snapshot.id, user, settings.at()).data if output == "json" else {}
    emit(output, data, lambda: click.echo(line(snapshot)))


def _users(values: tuple[str, ...]) -> tuple[str, ...]:
    """``--to a,b --to c`` -> (a, b, c)."""
    out = tuple(u.strip() for v in values for u in v.split(",") if u.strip())
    if not out:
        raise click.BadParameter("name at least one user", param_hint="--to")
    return out


@cli.command()
@click.argument("instance_id")
@as_option
@comment_option
@output_option
@pass_settings
def withdraw(
    settings: Settings, instance_id: str, user: str, comment: str | None, output: str
) -> None:
    """Withdraw (撤回) your active request INSTANCE_ID: its open tasks are cancelled and
    the people they waited for are told. Only the requester, or their delegate while they
    are away; the process may allow it only in some states or only until someone else
    has acted (`withdraw:` in its YAML)."""
    _run(
        settings, user, output,
        lambda wf: wf.withdraw(instance_id, user, comment, settings.now),
        lambda s: f"withdrawn: instance {s.id} (was in {s.state})",
    )  # fmt: skip


@cli.command()
@click.argument("instance_id")
@click.option(
    "--to", "to", multiple=True, required=True, metavar="USER[,USER]", help="Who to copy."
)
@as_option
@comment_option
@output_option
@pass_settings
def cc(
    settings: Settings,
    instance_id: str,
    to: tuple[str, ...],
    user: str,
    comment: str | None,
    output: str,
) -> None:
    """Copy (抄送) INSTANCE_ID to people: they are told now and may `show` it (confidential
    fields stay masked unless they are entitled). The requester, and anyone who has acted
    or may act on it, may copy it; at any status, also after it is decided."""
    readers = _users(to)
    _run(
        settings, user, output,
        lambda wf: wf.cc(instance_id, user, readers, comment, settings.now),
        lambda s: f"copied: instance {s.id} to {', '.join(readers)}",
    )  # fmt: skip


@cli.command()
@click.argument("task_id")
@click.option("--to", "to", required=True, metavar="USER", help="The person who takes it over.")
@as_option
@click.option("--comment", required=True, help="Why (required; the new holder is told).")
@output_option
@pass_settings
def transfer(
    settings: Settings, task_id: str, to: str, user: str, comment: str, output: str
) -> None:
    """Transfer (转交) your turn on TASK_ID to one person: it is theirs alone and you can
    no longer act on it. In a countersign only your slot moves; signatures already given
    stay. They must be able to act: a known user, present or with a present delegate, and
    not the requester (or an earlier approver) where the four-eyes rule holds."""
    _run(
        settings, user, output,
        lambda wf: wf.transfer(task_id, user, to, comment, settings.now),
        lambda s: f"transferred: task {task_id} to {to}",
    )  # fmt: skip


@cli.command()
@click.argument("task_id")
@as_option
@comment_option
@output_option
@pass_settings
def remind(settings: Settings, task_id: str, user: str, comment: str | None, output: str) -> None:
    """Remind (催办) whoever TASK_ID waits for, now. At most once an hour per task (a second
    try says how long to wait). The requester (or their delegate), the people it was
    copied to, and holders of the process's owner_role may remind."""
    _run(
        settings, user, output,
        lambda wf: wf.remind(task_id, user, comment, settings.now),
        lambda s: f"reminded: task {task_id}",
    )  # fmt: skip


@cli.command()
@click.argument("task_id")
@as_option
@output_option
@pass_settings
def claim(settings: Settings, task_id: str, user: str, output: str) -> None:
    """Claim TASK_ID, a task waiting for a role (或签): it is yours alone, out of the
    others' lists, until you release it with `unclaim`. You must be able to act on it."""
    _run(
        settings, user, output,
        lambda wf: wf.claim(task_id, user, settings.now),
        lambda s: f"claimed: task {task_id} by {user}",
    )  # fmt: skip


@cli.command()
@click.argument("task_id")
@as_option
@output_option
@pass_settings
def unclaim(settings: Settings, task_id: str, user: str, output: str) -> None:
    """Release TASK_ID, which you claimed, back to everyone it was assigned to (they are
    told). Only the claimer, or their delegate while they are away."""
    _run(
        settings, user, output,
        lambda wf: wf.unclaim(task_id, user, settings.now),
        lambda s: f"released: task {task_id}",
    )  # fmt: skip
