"""The approval operations besides deciding (issue 9), one endpoint per CLI command.

Each endpoint parses its body and calls ONE Workflow method as the caller, exactly as
the CLI command of the same name does with ``--as``; the rules (who may, four-eyes,
once an hour...) are the engine's, and a refusal is the same problem+json as a refused
decision (api/problems.py): 403 not allowed (recorded as ``denied``), 404 unknown,
409 decided or changed meanwhile, 422 invalid, 429 a reminder within the hour. Every
one answers the instance afterwards as the caller may see it (``operate``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Request

from api.auth import Actor
from api.routes import router
from api.routes.tasks import TaskId, operate
from api.schemas import (
    CcRequest,
    CommentRequest,
    InstanceDetail,
    TransferRequest,
    path_name,
)

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
