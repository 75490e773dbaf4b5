"""``create_app``: the HTTP face of Shenpi on one Workflow (the CLI's service calls).

Routes parse, call service/queries.py or the Workflow as the CLI does, and return what
it returns; refusals become problem+json (api/problems.py). Another component adds its
routes with one line, ``app.include_router(module.api)``, in :func:`create_app`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from api import problems
from api.deps import ApiConfig, ApiState
from api.limits import BodyLimit
from api.mount import mount_acting
from api.routes import (
    audit,
    definitions,
    health,
    instances,
    me,
    operations,
    registers,
    tasks,
)
from service.workflow import Workflow

__all__ = ["ApiConfig", "create_app"]

DESCRIPTION = """\
Approvers act on their tasks over HTTP: the same calls as `python run.py`, as the user
an API token belongs to (`python run.py tokens create USER`), with that user's roles,
stand-ins and four-eyes rules. Send `Authorization: Bearer shp_<id>_<secret>`.

Every error is `application/problem+json` (RFC 9457) with a stable `type` URI
(`https://shenpi.dev/problems/<kind>`), a `detail` in words and, for invalid input,
`errors: [{detail, pointer | parameter}]`.
"""


def create_app(workflow: Workflow, config: ApiConfig | None = None) -> FastAPI:
    config = config or ApiConfig()
    app = FastAPI(
        title="Shenpi (审批) API",
        version="1",
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.shenpi = ApiState(workflow, config)
    problems.install(app)
    # webhooks, action links, Idempotency-Key (api/mount.py)
    mount_acting(app, workflow, hooks_file=config.hooks_file, public_url=config.public_url)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes, timeout=config.body_timeout_s)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Location", "Link", "Retry-After"],
        )
    app.include_router(health.api)
    app.include_router(me.api)
    app.include_router(tasks.api)
    app.include_router(instances.api)
    app.include_router(operations.tasks_api)  # issue 9's operations besides deciding
    app.include_router(operations.instances_api)
    app.include_router(audit.api)
    app.include_router(definitions.api)
    app.include_router(registers.api)
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """/openapi.json with the Problem schema every error response refers to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Problem"] = problems.PROBLEM_SCHEMA
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
