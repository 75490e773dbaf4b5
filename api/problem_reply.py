"""problem+json answers of the hooks, links and idempotency modules, and ``Reply``.

Kinds the API already names (api/problems.KINDS) are answered exactly as the rest of
the API answers them. The kinds only these modules have keep the same ``type`` base and
are listed in ``EXTRA_KINDS``, with their status and title (the contract: add, never
rename).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from api.problems import KINDS, MEDIA_TYPE, TYPE_BASE, Kind, problem_response

EXTRA_KINDS: dict[str, Kind] = {
    "bad-signature": Kind(401, "The webhook signature is not valid"),
    "sender-not-allowed": Kind(403, "The sender may not do this"),
    "in-progress": Kind(409, "The same request is being handled"),
    "idempotency-key-reused": Kind(422, "Idempotency-Key reused for another request"),
}


def problem(
    slug: str, detail: str, /, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """The problem+json response of ``slug`` (a KINDS or EXTRA_KINDS slug)."""
    if slug in KINDS:
        return problem_response(slug, detail, None, headers, **extra)
    found = EXTRA_KINDS[slug]
    body = {"type": TYPE_BASE + slug, "title": found.title, "status": found.status}
    text = json.dumps(body | {"detail": detail} | extra, ensure_ascii=False)
    return Response(text, status_code=found.status, media_type=MEDIA_TYPE, headers=headers)


def status_of(slug: str) -> int:
    return (KINDS.get(slug) or EXTRA_KINDS[slug]).status


class Reply(Exception):  # noqa: N818 (it is not an error: it carries the answer)
    """Raised by a dependency to answer at once (a replay, a refusal) with ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response
