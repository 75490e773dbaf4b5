"""``application/problem+json`` (RFC 9457) answers for the hooks, links and idempotency
modules: a stable ``type`` per kind, ``title`` per kind, ``detail`` for this occurrence."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

PROBLEM_BASE = "https://shenpi.dev/problems/"
MEDIA_TYPE = "application/problem+json"

TITLES = {
    "bad-signature": "Webhook signature not valid",
    "forbidden-user": "Sender may not act for this user",
    "forbidden-process": "Sender may not start this process",
    "action-not-allowed": "Action not allowed",
    "not-found": "Not found",
    "invalid-body": "Invalid request body",
    "invalid-value": "Invalid value",
    "in-progress": "The same request is being handled",
    "conflict": "Changed meanwhile",
    "idempotency-key-reused": "Idempotency-Key reused with another request",
    "invalid-idempotency-key": "Invalid Idempotency-Key",
}


def problem_body(status: int, kind: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": PROBLEM_BASE + kind,
        "title": TITLES.get(kind, kind.replace("-", " ").capitalize()),
        "status": status,
        "detail": detail,
    } | extra


def problem(
    status: int, kind: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    body = json.dumps(problem_body(status, kind, detail, **extra), ensure_ascii=False)
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


class Reply(Exception):  # noqa: N818 (it is not an error: it carries the answer)
    """Raised by a dependency to answer at once (a replay, a refusal) with ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response
