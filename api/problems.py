"""Every error the HTTP API answers, as ``application/problem+json`` (RFC 9457).

One table (``KINDS``) names each kind of error: its stable ``type`` URI, its status and
its title. Handlers turn Shenpi's own exceptions (engine/errors.py), FastAPI's
validation errors, Starlette's routing errors and database outages into those problems;
anything else is a bug, answered 500 with no detail (the traceback goes to the log, never
to the client). Clients branch on ``type``, people read ``detail``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import (
    ActionNotAllowed,
    Conflict,
    DefinitionError,
    ExpressionError,
    InstanceClosed,
    InvalidData,
    NoDatabase,
    NotAuthenticated,
    NotFound,
    NotPermitted,
    OutOfOrder,
    ShenpiError,
    TaskClosed,
    TooSoon,
    WorkflowError,
)

log = logging.getLogger("shenpi.api")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://shenpi.dev/problems/"


@dataclass(frozen=True)
class Kind:
    status: int
    title: str


# slug -> (status, title). The slugs are part of the public contract: add, never rename.
KINDS: dict[str, Kind] = {
    "malformed-request": Kind(400, "The request could not be read"),
    "unauthorized": Kind(401, "No valid API token"),
    "forbidden": Kind(403, "The token may not do this"),
    "action-not-allowed": Kind(403, "The action is not allowed"),
    "not-found": Kind(404, "Not found"),
    "method-not-allowed": Kind(405, "Method not allowed"),
    "request-timeout": Kind(408, "The request body took too long"),
    "task-already-decided": Kind(409, "The task was already decided"),
    "instance-already-decided": Kind(409, "The instance is no longer active"),
    "conflict": Kind(409, "Changed by someone else meanwhile"),
    "out-of-order": Kind(409, "Earlier than the instance's last step"),
    "body-too-large": Kind(413, "The request body is too large"),
    "unsupported-media-type": Kind(415, "Unsupported media type"),
    "invalid-request": Kind(422, "Invalid values in the request"),
    "invalid-definition": Kind(422, "The definition is invalid"),
    "refused": Kind(422, "The request was refused"),
    "rate-limited": Kind(429, "Too many requests"),
    "too-soon": Kind(429, "Done too recently; try again later"),
    "internal-error": Kind(500, "Internal error"),
    "unavailable": Kind(503, "The service is unavailable"),
}
_BY_STATUS = {
    400: "malformed-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    408: "request-timeout",
    409: "conflict",
    413: "body-too-large",
    415: "unsupported-media-type",
    422: "invalid-request",
    429: "rate-limited",
    503: "unavailable",
}
WWW_AUTHENTICATE = 'Bearer realm="shenpi"'


class ApiProblem(Exception):
    """Raise anywhere in a request to answer with this problem."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        if slug not in KINDS:
            raise ValueError(f"unknown problem kind {slug!r}")
        super().__init__(detail)
        self.slug = slug
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions

    @property
    def status(self) -> int:
        return KINDS[self.slug].status


def problem_response(
    slug: str,
    detail: str,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    kind = KINDS[slug]
    body = document(slug, detail, instance, **extensions)
    hdrs = dict(headers or {})
    if kind.status == 401:
        hdrs.setdefault("WWW-Authenticate", WWW_AUTHENTICATE)
    return JSONResponse(body, status_code=kind.status, headers=hdrs, media_type=MEDIA_TYPE)


def document(
    slug: str, detail: str, instance: str | None = None, **extensions: Any
) -> dict[str, Any]:
    """The problem as a JSON object (None-valued extensions left out)."""
    kind = KINDS[slug]
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extensions.items() if v is not None})
    return body


def refusal_document(exc: ShenpiError) -> dict[str, Any]:
    """The problem document a refusal of the service layer answers, as an object: what a
    batch reports for each refused task, so a client reads it as it reads one refusal."""
    problem = problem_for(exc)
    return document(problem.slug, problem.detail, **problem.extensions)


def problem_body(slug: str, detail: str, **extensions: Any) -> bytes:
    """The same document as raw bytes, for the ASGI middlewares below FastAPI's handlers."""
    kind = KINDS[slug]
    body = {"type": TYPE_BASE + slug, "title": kind.title, "status": kind.status}
    return json.dumps(body | {"detail": detail} | extensions).encode()


# --------------------------------------------------------------------------- mapping


def problem_for(exc: ShenpiError) -> ApiProblem:
    """The problem a refusal of the service layer becomes (most specific class first)."""
    if isinstance(exc, TaskClosed):
        return ApiProblem(
            "task-already-decided",
            str(exc),
            task_id=exc.task,
            task_status=exc.status,
            decision=exc.decision,
            decided_by=exc.decided_by,
        )
    if isinstance(exc, InstanceClosed):
        return ApiProblem(
            "instance-already-decided",
            str(exc),
            instance_id=exc.task,
            instance_status=exc.status,
            outcome=exc.outcome,
        )
    if isinstance(exc, TooSoon):
        return ApiProblem(
            "too-soon",
            str(exc),
            headers={"Retry-After": str(exc.retry_after)},
            task_id=exc.task,
            action=exc.action,
            reason=exc.reason,
            retry_after=exc.retry_after,
        )
    if isinstance(exc, ActionNotAllowed):
        return ApiProblem(
            "action-not-allowed", str(exc), task_id=exc.task, action=exc.action, reason=exc.reason
        )
    if isinstance(exc, NotFound):
        return ApiProblem("not-found", str(exc), kind=exc.kind, id=str(exc.ident))
    if isinstance(exc, Conflict):
        return ApiProblem("conflict", str(exc), instance_id=exc.instance_id)
    if isinstance(exc, OutOfOrder):
        return ApiProblem("out-of-order", str(exc), instance_id=exc.instance_id)
    if isinstance(exc, InvalidData):
        return ApiProblem(
            "invalid-request", str(exc), errors=[{"detail": exc.reason} | _field(exc.field)]
        )
    if isinstance(exc, DefinitionError):
        return ApiProblem(
            "invalid-definition",
            f"{len(exc.problems)} problem(s) in the definition",
            problems=[problem_json(p) for p in exc.problems],
        )
    if isinstance(exc, ExpressionError):
        return ApiProblem("refused", str(exc))
    if isinstance(exc, NotAuthenticated):
        return ApiProblem("unauthorized", str(exc))
    if isinstance(exc, NotPermitted):
        return ApiProblem("forbidden", str(exc))
    if isinstance(exc, NoDatabase):
        return ApiProblem("unavailable", "the database does not exist yet")
    if isinstance(exc, WorkflowError):
        return ApiProblem("refused", str(exc))
    log.error("configuration problem: %s", exc)
    return ApiProblem("unavailable", "the server is misconfigured; see its log")


def problem_json(problem: Any) -> dict[str, Any]:
    """A definition problem (engine.errors.Problem) with its place in the file."""
    return {
        "file": problem.file,
        "line": problem.line,
        "col": problem.col,
        "message": problem.message,
    }


def invalid(detail: str, *, parameter: str | None = None, pointer: str | None = None) -> ApiProblem:
    """A 422 about one query parameter or body member."""
    where = {"parameter": parameter} if parameter else {"pointer": pointer or "#"}
    return ApiProblem("invalid-request", detail, errors=[{"detail": detail} | where])


# InvalidData names a body member or a variable (engine/steps.py, engine/values.py)
_BODY_FIELDS = {"action": "#/action", "comment": "#/comment", "process": "#/process"}
_NOT_IN_BODY = {"task id", "instance id", "user", "file", "limit"}


def _field(name: str) -> dict[str, str]:
    if name in _BODY_FIELDS:
        return {"pointer": _BODY_FIELDS[name]}
    if name in _NOT_IN_BODY or " " in name:
        return {}
    return {"pointer": f"#/variables/{_escape(name)}"}


def _escape(name: str) -> str:
    """A JSON Pointer reference token (RFC 6901)."""
    return name.replace("~", "~0").replace("/", "~1")


def _pointer(loc: Sequence[Any]) -> dict[str, str]:
    """FastAPI's ``loc`` (``("body", "variables", "x")``) as a JSON pointer or parameter."""
    if not loc:
        return {"pointer": "#"}
    where, rest = loc[0], [str(p) for p in loc[1:]]
    if where == "body":
        return {"pointer": "#/" + "/".join(_escape(p) for p in rest) if rest else "#"}
    return {"parameter": f"{where}.{rest[0]}" if rest else str(where)}


# --------------------------------------------------------------------------- handlers


def _database_error(exc: Exception) -> bool:
    import sqlalchemy.exc as sa_exc

    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError)


def install(app: FastAPI) -> None:
    """Register the handlers: after this, no response of ``app`` is FastAPI's plain JSON."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        return problem_response(
            exc.slug, exc.detail, request.url.path, exc.headers, **exc.extensions
        )

    async def on_shenpi(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ShenpiError)
        return await on_problem(request, problem_for(exc))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        path = request.url.path
        bad_json = [e for e in errors if e.get("type") == "json_invalid"]
        if bad_json:
            reason = (bad_json[0].get("ctx") or {}).get("error", "invalid JSON")
            return problem_response(
                "malformed-request", f"the body is not valid JSON: {reason}", path
            )
        found = [{"detail": _message(e)} | _pointer(e.get("loc", ())) for e in errors]
        detail = "; ".join(f"{next(iter(f.values()))}" for f in found[:1])
        where = next((v for k, v in found[0].items() if k != "detail"), "") if found else ""
        return problem_response(
            "invalid-request", f"{where}: {detail}" if where else detail, path, errors=found
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = _BY_STATUS.get(exc.status_code, "malformed-request")
        detail = {
            404: f"no such resource: {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
            413: "the request body is larger than this server accepts",
        }.get(exc.status_code, str(exc.detail))
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed(request))
        return problem_response(slug, detail, request.url.path, headers)

    async def on_unicode(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(
            "malformed-request", "the request is not valid UTF-8 text", request.url.path
        )

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        if _database_error(exc):
            log.warning("database unavailable: %s", str(exc).splitlines()[0])
            return problem_response(
                "unavailable",
                "the database is unavailable or busy; try again shortly",
                request.url.path,
                {"Retry-After": "1"},
            )
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(
            "internal-error", "an unexpected error; it was logged", request.url.path
        )

    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(ShenpiError, on_shenpi)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(UnicodeError, on_unicode)
    app.add_exception_handler(Exception, on_error)


def _allowed(request: Request) -> list[str]:
    """Every method some route offers on this path (Starlette names only the first
    route's, wrong where GET and POST are two routes on one path)."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _message(error: Mapping[str, Any]) -> str:
    return str(error.get("msg", "invalid value"))


# --------------------------------------------------------------------------- OpenAPI


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["detail"],
                "properties": {
                    "detail": {"type": "string"},
                    "pointer": {"type": "string"},
                    "parameter": {"type": "string"},
                },
            },
        },
    },
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problems an operation may answer."""
    found: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        titles = sorted({k.title for k in KINDS.values() if k.status == status})
        found[status] = {
            "description": "; ".join(titles) or "problem",
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    return found


# what any authenticated operation may answer besides its own refusals
COMMON = (400, 401, 403, 413, 422, 429, 503)
