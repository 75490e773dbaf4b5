"""Instances: start one, see one as the caller may, list, and the diagram with its position."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query, Request, Response

from api.auth import Actor, Reader
from api.deps import workflow
from api.paging import Cursor, Limit, checked_cursor, page
from api.problems import ApiProblem
from api.routes import router
from api.schemas import (
    NAME_PATTERN,
    Diagram,
    Instance,
    InstanceDetail,
    Page,
    StartRequest,
    path_name,
    query_name,
)
from service.queries import instance_diagram, instance_rows, instance_view

api = router("instances", 404, 409)
InstanceId = Annotated[str, path_name("An instance id.")]


@api.post(
    "/instances",
    status_code=201,
    response_model=InstanceDetail,
    summary="Start an instance",
)
def start(
    request: Request, response: Response, caller: Actor, body: StartRequest
) -> dict[str, Any]:
    """Start ``process`` (its latest version) as the caller (``run.py start P --as
    CALLER``); answers 201 with ``Location`` and the instance as the caller sees it."""
    wf = workflow(request)
    snapshot = wf.start(body.process, caller.user, body.variables)
    # a path, not an absolute URL: behind a TLS proxy this server does not know the scheme
    response.headers["Location"] = request.app.url_path_for("get_instance", instance_id=snapshot.id)
    return instance_view(wf, snapshot.id, caller.user, wf.clock()).data


@api.get("/instances", response_model=Page[Instance], summary="List instances")
def list_instances(
    request: Request,
    response: Response,
    caller: Reader,
    process: Annotated[str | None, query_name()] = None,
    state: Annotated[str | None, query_name()] = None,
    status: Annotated[
        Literal["active", "completed", "withdrawn", "cancelled"] | None, Query()
    ] = None,
    requester: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=NAME_PATTERN,
            description="'me' (the default without the admin scope) or a user id (admin).",
        ),
    ] = None,
    parent: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=NAME_PATTERN,
            description="Only the instances this instance started (linked processes).",
        ),
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Oldest first. Without the admin scope only the caller's own requests (whose
    values they may see); with it, every instance, as the operator's ``instances``."""
    if requester in (None, "me"):
        requester = None if caller.may("admin") and requester is None else caller.user
    elif requester != caller.user and not caller.may("admin"):
        raise ApiProblem(
            "forbidden",
            "listing another person's requests needs the admin scope; use requester=me",
        )
    rows = instance_rows(
        workflow(request),
        process=process,
        state=state,
        status=status,
        parent=parent,
        requester=requester,
        limit=limit,
        after=checked_cursor("instances", cursor),
    )
    return page(request, response, rows)


@api.get("/instances/{instance_id}", response_model=InstanceDetail, summary="One instance")
def get_instance(request: Request, caller: Reader, instance_id: InstanceId) -> dict[str, Any]:
    """State, variables, open tasks, deadlines and history, with confidential values
    masked unless the caller may see them (``run.py show ID --as CALLER``)."""
    wf = workflow(request)
    return instance_view(wf, instance_id, caller.user, wf.clock()).data


@api.get(
    "/instances/{instance_id}/diagram",
    response_model=Diagram,
    summary="The process diagram with the instance's position",
)
def diagram(request: Request, caller: Reader, instance_id: InstanceId) -> dict[str, Any]:
    """Mermaid ``stateDiagram-v2`` of the instance's version, its current state
    highlighted (class ``current``)."""
    return instance_diagram(workflow(request), instance_id)
