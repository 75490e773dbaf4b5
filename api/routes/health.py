"""``/healthz``: the process answers. ``/readyz``: the database answers, at our schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import workflow
from api.schemas import Health
from storage.db import HEAD_REVISION, current_revision

api = APIRouter(tags=["health"])


@api.get(
    "/healthz", response_model=Health, response_model_exclude_none=True, summary="The process is up"
)
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@api.get(
    "/readyz",
    response_model=Health,
    summary="The database is reachable and migrated",
    responses={503: {"model": Health, "description": "Not ready"}},
)
def readyz(request: Request) -> Any:
    """503 while the database is unreachable or at another schema revision than this
    release's (a load balancer then keeps traffic away)."""
    try:
        revision = current_revision(workflow(request).store.engine)
    except Exception as exc:  # any driver error means "not ready", never a 500
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return JSONResponse(
            {"status": "unavailable", "database": f"unreachable: {first[:200]}"}, 503
        )
    body = {
        "status": "ok" if revision == HEAD_REVISION else "unavailable",
        "database": "reachable",
        "revision": revision,
        "expected_revision": HEAD_REVISION,
    }
    return JSONResponse(body, 200 if revision == HEAD_REVISION else 503)
