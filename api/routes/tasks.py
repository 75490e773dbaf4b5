"""Tasks: what the caller may act on, one task, and deciding it.

Issue 9's other operations (withdraw, transfer, add-signer, rollback, cc, remind, claim,
batch) are in api/routes/operations.py, each one small endpoint calling one Workflow
method through ``operate`` below, like ``decide``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Query, Request, Response

from api.auth import Actor, Caller, Reader
from api.deps import workflow
from api.paging import Cursor, Limit, checked_cursor, page
from api.routes import router
from api.schemas import Decision, InstanceDetail, Page, Task, path_name, query_name
from service.queries import instance_view, task_rows, task_view

if TYPE_CHECKING:
    from engine.records import Snapshot
    from service.workflow import Workflow

api = router("tasks", 404, 409)
TaskId = Annotated[str, path_name("A task id.")]


@api.get("/tasks", response_model=Page[Task], summary="Tasks the caller may act on now")
def list_tasks(
    request: Request,
    response: Response,
    caller: Reader,
    role: Annotated[str | None, query_name("Only this role.")] = None,
    process: Annotated[str | None, query_name("Only this process.")] = None,
    overdue: Annotated[bool, Query(description="Only tasks past their due time.")] = False,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """By due time, undated last (``run.py tasks --as CALLER``): roles held or stood in
    for, minus four-eyes and tasks the caller already signed."""
    wf = workflow(request)
    rows = task_rows(
        wf,
        wf.clock(),
        user=caller.user,
        role=role,
        process=process,
        overdue=overdue,
        limit=limit,
        after=checked_cursor("tasks", cursor),
    )
    return page(request, response, rows)


@api.get("/tasks/{task_id}", response_model=Task, summary="One task")
def get_task(request: Request, caller: Reader, task_id: TaskId) -> dict[str, Any]:
    wf = workflow(request)
    return task_view(wf, task_id, wf.clock())


@api.post(
    "/tasks/{task_id}/decision",
    response_model=InstanceDetail,
    summary="Decide a task",
)
def decide(request: Request, caller: Actor, task_id: TaskId, body: Decision) -> dict[str, Any]:
    """Take ``action`` on the task as the caller (``run.py act TASK ACTION --as CALLER``);
    answers the instance afterwards as the caller may see it. 409 when the task was
    decided already (``decided_by`` says by whom), 403 when the caller may not (role,
    four-eyes; recorded as ``denied`` in the audit log, like the CLI)."""
    return operate(
        request,
        caller,
        lambda wf: wf.act(task_id, body.action, caller.user, body.variables, body.comment),
    )


def operate(
    request: Request, caller: Caller, step: Callable[[Workflow], Snapshot]
) -> dict[str, Any]:
    """Take one step through the Workflow as the caller, and answer the instance as they
    see it afterwards: the body of every operation on a task (decide, and issue 9's
    transfer, claim, rollback... each one endpoint with one line calling this)."""
    wf = workflow(request)
    snapshot = step(wf)
    return instance_view(wf, snapshot.id, caller.user, wf.clock()).data
