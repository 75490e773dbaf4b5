"""Commands that change who decides a task: add-signer (加签) and rollback (退回).

Each parses, calls one ``Workflow`` method and prints the instance afterwards, as ``act``
does; a refusal is one line on stderr, exit 1, and only a ``denied`` audit entry.
"""

from __future__ import annotations

import click

from service.cli import cli
from service.cli_base import Settings, output_option, pass_settings, refusals


@cli.command("add-signer")
@click.argument("task_id")
@click.option(
    "--users", required=True, metavar="U1[,U2...]", help="The people to add (user ids, commas)."
)
@click.option(
    "--where",
    required=True,
    metavar="before|after|parallel",
    help="before: they decide first, then the task comes back to you; after: you agree "
    "now and they decide next; parallel: they sign beside you (会签).",
)
@click.option(
    "--mode",
    default="any",
    show_default=True,
    metavar="any|all|sequence",
    help="Among the added: any one of them (或签), all of them (会签), or one after another "
    "in the order given (依次).",
)
@click.option("--as", "user", required=True, help="Who adds them (someone the task awaits).")
@click.option("--comment", help="Why (goes into the audit and the notice).")
@output_option
@pass_settings
def add_signer(
    settings: Settings,
    task_id: str,
    users: str,
    where: str,
    mode: str,
    user: str,
    comment: str | None,
    output: str,
) -> None:
    """Add signers to TASK_ID (加签) and print the instance afterwards.

    The task's agreeing action (its `countersign:`, else `approve`) passes an added
    signer's turn; any other action by them decides the task at once, like a reject in a
    countersign.
    """
    from service.cli_instances import _show

    with refusals():
        wf = settings.workflow()
        names = [u.strip() for u in users.split(",") if u.strip()]
        snapshot = wf.add_signer(task_id, names, where, user, mode, comment, settings.now)
        _show(settings, snapshot.id, user, output)


@cli.command()
@click.argument("task_id")
@click.option(
    "--to",
    "to",
    required=True,
    metavar="STATE|start",
    help="An earlier state this request has been in, or 'start': back to the requester "
    "to revise and resubmit.",
)
@click.option("--as", "user", required=True, help="Who sends it back (someone the task awaits).")
@click.option("--comment", help="Why it goes back (required; the receiver is told).")
@output_option
@pass_settings
def rollback(
    settings: Settings, task_id: str, to: str, user: str, comment: str | None, output: str
) -> None:
    """Send the request of TASK_ID back (退回) and print the instance afterwards.

    The open task is cancelled. A request sent to 'start' waits for its requester:
    'act TASK resubmit [--set ...]' or 'act TASK withdraw'; the process's
    'rollback.resubmit' says whether resubmitting runs the whole route again or returns
    to the state that sent it back.
    """
    from service.cli_instances import _show

    with refusals():
        snapshot = settings.workflow().rollback(task_id, to, user, comment, settings.now)
        _show(settings, snapshot.id, user, output)
