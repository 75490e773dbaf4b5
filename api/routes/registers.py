"""Registers (issue 12): the books processes keep, their rows and a row's history (read)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Request, Response
from pydantic import Field

from api.auth import Reader
from api.deps import workflow
from api.paging import Cursor, Limit
from api.routes import router
from api.schemas import Open, Page, path_name
from service.registers import history, list_registers, show_row, show_rows, spec_of

api = router("registers", 404)
Name = Annotated[str, path_name("A register name.")]
Key = Annotated[str, path_name("A row's key.")]


class Register(Open):
    name: str = Field(alias="register")  # "register" itself shadows a BaseModel attribute
    title: str
    rows: int
    version: int
    writers: list[str]


class RegisterVersion(Open):
    version: int
    at: str
    actor: str
    action: str
    process: str
    instance_id: str | None = None
    changes: dict[str, dict[str, Any]]


@api.get("/registers", response_model=list[Register], summary="The registers")
def registers(request: Request, caller: Reader) -> list[dict[str, Any]]:
    """Every register defined: rows, version (bumped by every write), writers."""
    return list_registers(workflow(request))


@api.get("/registers/{name}", response_model=Page[Open], summary="A register's rows")
def rows(
    request: Request,
    response: Response,
    caller: Reader,
    name: Name,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """The rows by key, a page at a time; ``next_cursor`` is the last key shown."""
    wf = workflow(request)
    spec_of(wf, name)
    items, nxt = show_rows(wf, name, cursor, limit)
    if nxt is not None:
        url = request.url.include_query_params(cursor=nxt)
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    return {"items": items, "next_cursor": nxt}


@api.get("/registers/{name}/{key}", response_model=Open, summary="One row")
def row(request: Request, caller: Reader, name: Name, key: Key) -> dict[str, Any]:
    """The row's fields, the version that last wrote it and when."""
    return show_row(workflow(request), name, key)


@api.get(
    "/registers/{name}/{key}/history",
    response_model=list[RegisterVersion],
    summary="Every version of one row",
)
def row_history(request: Request, caller: Reader, name: Name, key: Key) -> list[dict[str, Any]]:
    """When, who, write or import, which instance, and each field's old and new value."""
    return history(workflow(request), name, key)
