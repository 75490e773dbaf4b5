"""Process definitions: the deployed versions, and checking a YAML text before deploying."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request

from api.auth import Reader
from api.deps import workflow
from api.problems import problem_json
from api.routes import router
from api.schemas import (
    Definition,
    DefinitionSource,
    ValidateRequest,
    Validation,
    path_name,
)
from engine.errors import DefinitionError
from service.queries import definition_rows, definition_view, validate_text

api = router("definitions", 404)
Process = Annotated[str, path_name("A process name.")]


@api.get("/definitions", response_model=list[Definition], summary="Deployed processes")
def list_definitions(request: Request, caller: Reader) -> list[dict[str, Any]]:
    """The latest version of every deployed process, by name."""
    return definition_rows(workflow(request))


@api.get("/definitions/{process}", response_model=DefinitionSource, summary="The latest version")
def latest(request: Request, caller: Reader, process: Process) -> dict[str, Any]:
    return definition_view(workflow(request), process, None)


@api.get(
    "/definitions/{process}/versions/{version}",
    response_model=DefinitionSource,
    summary="One deployed version, with its YAML",
)
def version(
    request: Request,
    caller: Reader,
    process: Process,
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
) -> dict[str, Any]:
    return definition_view(workflow(request), process, version)


@api.post("/definitions/validate", response_model=Validation, summary="Check a YAML text")
def validate(request: Request, caller: Reader, body: ValidateRequest) -> dict[str, Any]:
    """Check a process, org or calendar file as ``run.py validate`` does, against the
    server's org and calendars; changes nothing. Invalid text is still 200, with
    ``valid`` false and every problem with its line and column."""
    try:
        return validate_text(workflow(request), body.source, body.file)
    except DefinitionError as exc:
        return {"valid": False, "problems": [problem_json(p) for p in exc.problems]}
