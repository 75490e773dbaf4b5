"""The API's routers, one module per resource; api/app.py includes each with one line."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.jsonbody import ExactJSONRoute
from api.problems import COMMON, ApiProblem, responses


def known_query(request: Request) -> None:
    """Refuse query parameters the route does not take: ``?stauts=open`` would otherwise
    answer every status, as if the filter had been applied."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise ApiProblem(
            "malformed-request",
            f"unknown query parameter {', '.join(unknown)}; this endpoint takes: {takes}",
        )


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters of a route and of every dependency it uses."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def router(tag: str, *extra: int) -> APIRouter:
    """A /v1 router whose bodies are read exactly, whose query parameters are checked and
    whose problems are documented."""
    return APIRouter(
        prefix="/v1",
        tags=[tag],
        route_class=ExactJSONRoute,
        responses=responses(*sorted({*COMMON, *extra})),
        dependencies=[Depends(known_query)],
    )
