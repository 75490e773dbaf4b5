"""The approval operations besides deciding (issue 9), one endpoint per CLI command.

Each endpoint parses its body and calls ONE Workflow method as the caller, exactly as
the CLI command of the same name does with ``--as``; the rules (who may, four-eyes,
once an hour...) are the engine's, and a refusal is the same problem+json as a refused
decision (api/problems.py): 403 not allowed (recorded as ``denied``), 404 unknown,
409 decided or changed meanwhile, 422 invalid, 429 a reminder within the hour. Each
operation on one task or instance answers the instance afterwards as the caller may see
it (``operate``); the batch answers one result per task (service/batch.py), and
``GET /v1/decisions`` lists what a person decided (``tasks --done-by``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Query, Request, Response

from api.auth import Actor, Reader
from api.deps import workflow
from api.paging import Cursor, Limit, checked_cursor, page
from api.problems import ApiProblem, document, refusal_document
from api.routes import router
from api.routes.tasks import TaskId, operate
from api.schemas import (
    NAME_PATTERN,
    AddSignerRequest,
    BatchRequest,
    BatchResult,
    CcRequest,
    CommentRequest,
    DecisionRow,
    InstanceDetail,
    Page,
    RollbackRequest,
    TransferRequest,
    path_name,
)
from service.batch import TaskResult, act_many, all_ok
from service.queries import decision_rows

tasks_api = router("tasks", 404, 409)
instances_api = router("instances", 404, 409)
InstanceId = Annotated[str, path_name("An instance id.")]
OptionalComment = Annotated[CommentRequest | None, Body()]


def _comment(body: CommentRequest | None) -> str | None:
    return body.comment if body else None


# --------------------------------------------------------------------------- instances


@instances_api.post(
    "/instances/{instance_id}/withdraw",
    response_model=InstanceDetail,
    summary="Withdraw my request (撤回)",
)
def withdraw(
    request: Request, caller: Actor, instance_id: InstanceId, body: OptionalComment = None
) -> dict[str, Any]:
    """The requester (or their delegate while they are away) takes back an active
    request; its open tasks are cancelled (``run.py withdraw ID --as CALLER``). The
    process may allow it only in some states or until the first approval (403)."""
    return operate(
        request, caller, lambda wf: wf.withdraw(instance_id, caller.user, _comment(body))
    )


@instances_api.post(
    "/instances/{instance_id}/cc",
    response_model=InstanceDetail,
    summary="Copy an instance to people (抄送)",
)
def cc(request: Request, caller: Actor, instance_id: InstanceId, body: CcRequest) -> dict[str, Any]:
    """They are told now and may read the instance, confidential values masked
    (``run.py cc ID --to U1,U2 --as CALLER``). The requester and anyone who has acted or
    may act on it may copy it, at any status."""
    return operate(
        request, caller, lambda wf: wf.cc(instance_id, caller.user, body.to, body.comment)
    )


# --------------------------------------------------------------------------- tasks


@tasks_api.post(
    "/tasks/{task_id}/transfer",
    response_model=InstanceDetail,
    summary="Transfer my turn on a task (转交)",
)
def transfer(
    request: Request, caller: Actor, task_id: TaskId, body: TransferRequest
) -> dict[str, Any]:
    """The caller's turn becomes ``to``'s alone (in a countersign only the caller's slot
    moves); ``to`` must be able to act: a known user, present or with a present delegate,
    not the requester under four-eyes (``run.py transfer TASK --to U --comment WHY --as
    CALLER``)."""
    return operate(
        request, caller, lambda wf: wf.transfer(task_id, caller.user, body.to, body.comment)
    )


@tasks_api.post(
    "/tasks/{task_id}/remind",
    response_model=InstanceDetail,
    summary="Remind whoever a task waits for (催办)",
    responses={429: {"description": "Reminded within the hour; Retry-After says when"}},
)
def remind(
    request: Request, caller: Actor, task_id: TaskId, body: OptionalComment = None
) -> dict[str, Any]:
    """Tell the people the task waits for, now (``run.py remind TASK --as CALLER``). The
    requester (or their delegate), the people it was copied to and holders of the
    process's ``owner_role`` may. At most once an hour per task: a second reminder is 429
    ``too-soon`` with ``Retry-After`` (and ``retry_after``) in seconds."""
    return operate(request, caller, lambda wf: wf.remind(task_id, caller.user, _comment(body)))


@tasks_api.post(
    "/tasks/{task_id}/claim",
    response_model=InstanceDetail,
    summary="Claim a role task",
)
def claim(request: Request, caller: Actor, task_id: TaskId) -> dict[str, Any]:
    """The task becomes the caller's alone, out of the others' lists, until released
    (``run.py claim TASK --as CALLER``). Someone else's claim is a refusal like a
    wrong role (403 ``action-not-allowed`` naming the holder)."""
    return operate(request, caller, lambda wf: wf.claim(task_id, caller.user))


@tasks_api.post(
    "/tasks/{task_id}/unclaim",
    response_model=InstanceDetail,
    summary="Release a claimed task",
)
def unclaim(request: Request, caller: Actor, task_id: TaskId) -> dict[str, Any]:
    """Back to everyone it was assigned to, who are told (``run.py unclaim TASK --as
    CALLER``). Only the claimer, or their delegate while they are away."""
    return operate(request, caller, lambda wf: wf.unclaim(task_id, caller.user))


@tasks_api.post(
    "/tasks/{task_id}/add-signer",
    response_model=InstanceDetail,
    summary="Add signers to a task (加签)",
)
def add_signer(
    request: Request, caller: Actor, task_id: TaskId, body: AddSignerRequest
) -> dict[str, Any]:
    """Add ``users`` before, after or beside the caller, someone the task awaits
    (``run.py add-signer TASK --users U1,U2 --where W --mode M --as CALLER``). Refused
    (403, recorded as ``denied``): adding oneself, an unknown or absent user, the requester
    under four-eyes, someone already awaited."""
    return operate(
        request,
        caller,
        lambda wf: wf.add_signer(
            task_id, body.users, body.where, caller.user, body.mode, body.comment
        ),
    )


@tasks_api.post(
    "/tasks/{task_id}/rollback",
    response_model=InstanceDetail,
    summary="Send a request back (退回)",
)
def rollback(
    request: Request, caller: Actor, task_id: TaskId, body: RollbackRequest
) -> dict[str, Any]:
    """To a state the instance has been in before, or ``start`` (to the requester, who
    answers with the ``resubmit`` or ``withdraw`` decision on the new task) (``run.py
    rollback TASK --to STATE --comment WHY --as CALLER``). A state never visited is 403
    naming the states it can go back to."""
    return operate(
        request, caller, lambda wf: wf.rollback(task_id, body.to, caller.user, body.comment)
    )


@tasks_api.post("/tasks/batch", response_model=BatchResult, summary="Decide several tasks")
def batch(request: Request, caller: Actor, body: BatchRequest) -> dict[str, Any]:
    """The same decision on each task, in the order given, each in a transaction of its
    own (``run.py act T1 T2 ... ACTION --as CALLER``). Answers 200 with one result per
    task and ``ok: false`` if any was refused; a refused task's ``problem`` is the
    document its single decision would have answered (403, 404, 409...), and the other
    tasks still went through. A batch that cannot be meant (an id twice) is 422 and
    touches nothing."""
    results = act_many(
        workflow(request),
        body.task_ids,
        body.action,
        caller.user,
        body.variables,
        body.comment,
    )
    return {"ok": all_ok(results), "results": [_result(r) for r in results]}


def _result(result: TaskResult) -> dict[str, Any]:
    row = result.to_json()
    if result.refusal is not None:
        row["problem"] = refusal_document(result.refusal)
    elif not result.ok:  # the database failed for this task
        row["problem"] = document("unavailable", result.error or "the database failed")
    return row


@tasks_api.get(
    "/decisions",
    response_model=Page[DecisionRow],
    summary="What a person decided or signed",
)
def decisions(
    request: Request,
    response: Response,
    caller: Reader,
    by: Annotated[
        str,
        Query(
            max_length=200,
            pattern=NAME_PATTERN,
            description="'me' (the default) or a user id (admin scope).",
        ),
    ] = "me",
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Newest first, one row per decision or signature with its action and comment, the
    state it was given in and the task as it is now (``run.py tasks --done-by USER``).
    Steps taken on someone's behalf are their delegate's; refusals, claims and reminders
    are no decisions."""
    user = caller.user if by == "me" else by
    if user != caller.user and not caller.may("admin"):
        raise ApiProblem(
            "forbidden", "listing another person's decisions needs the admin scope; use by=me"
        )
    rows = decision_rows(workflow(request), user, limit=limit, after=checked_cursor("done", cursor))
    return page(request, response, rows)
