"""The API's routers, one module per resource; api/app.py includes each with one line."""

from __future__ import annotations

from fastapi import APIRouter

from api.jsonbody import ExactJSONRoute
from api.problems import COMMON, responses


def router(tag: str, *extra: int) -> APIRouter:
    """A /v1 router whose bodies are read exactly and whose problems are documented."""
    return APIRouter(
        prefix="/v1",
        tags=[tag],
        route_class=ExactJSONRoute,
        responses=responses(*sorted({*COMMON, *extra})),
    )
