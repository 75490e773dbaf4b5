"""Cursor paging over HTTP: ``?limit=&cursor=`` in, ``next_cursor`` and a Link header out.

The cursors are the CLI's (storage/paging.py): the sort key of the last row shown, so a
page never skips or repeats a row when rows are added between requests.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request, Response

from api.problems import invalid
from engine.errors import InvalidData
from service.queries import Rows, check_cursor

Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many items (1-1000).")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=400,
        description="Continue after the page whose next_cursor this is.",
    ),
]


def checked_cursor(kind: str, cursor: str | None) -> str | None:
    """``cursor`` if it is one of the ``kind`` listing's; 422 on the parameter otherwise."""
    if cursor is None:
        return None
    try:
        check_cursor(kind, cursor)
    except InvalidData:
        raise invalid(
            f"not a cursor of the {kind} listing; pass the next_cursor of a previous page",
            parameter="query.cursor",
        ) from None
    return cursor


def page(request: Request, response: Response, rows: Rows) -> dict[str, Any]:
    """The page body, and ``Link: <...>; rel="next"`` when there is more."""
    if rows.next is not None:
        url = request.url.include_query_params(cursor=rows.next)
        # relative, like Location: the scheme and host are the proxy's to know
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    return {"items": rows.items, "next_cursor": rows.next}
