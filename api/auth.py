"""Who is calling: ``Authorization: Bearer shp_<id>_<secret>`` (service/tokens.py).

``require(scope)`` is a FastAPI dependency that yields the :class:`Caller`: the token's
user, whom the route passes to the Workflow exactly as the CLI passes ``--as``, so roles,
stand-ins and four-eyes apply unchanged. No token, or a malformed, unknown, expired or
revoked one, is 401 with ``WWW-Authenticate``; a live token without the scope is 403;
a token over its rate is 429 with ``Retry-After``.

Usage in a router (one line per route)::

    @router.get("/things")
    def things(caller: Annotated[Caller, Depends(require("read"))]) -> ...
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import state
from api.problems import ApiProblem
from engine.errors import NotAuthenticated
from service.tokens import SCOPES, Caller, authenticate

__all__ = ["Caller", "Reader", "Actor", "Admin", "require"]

log = logging.getLogger("shenpi.api")
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token from 'python run.py tokens create USER': shp_<id>_<secret>.",
)
TOUCH_EVERY_S = 60.0  # last_used_at is written at most this often per token
_touched: dict[str, float] = {}
_touch_lock = threading.Lock()


def _authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiProblem(
            "unauthorized",
            "an API token is required: Authorization: Bearer shp_<id>_<secret>",
        )
    app = state(request)
    wf = app.workflow
    now = wf.clock()
    try:
        caller, row = authenticate(wf, credentials.credentials, now)
    except NotAuthenticated as exc:
        raise ApiProblem(
            "unauthorized",
            str(exc),
            headers={"WWW-Authenticate": 'Bearer realm="shenpi", error="invalid_token"'},
        ) from None
    wait = app.limiter.take(caller.token_id)
    if wait is not None:
        raise ApiProblem(
            "rate-limited",
            f"more than {app.config.rate_burst} requests at once or over "
            f"{app.config.rate_per_minute:g} a minute for this token; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    _touch(app.workflow, row.id, now)
    return caller


def _touch(wf: object, token_id: str, now: object) -> None:
    """Note the token's last use, at most once a minute (a write per request would
    compete with the decisions themselves for the database)."""
    mono = time.monotonic()
    with _touch_lock:
        last = _touched.get(token_id)
        if last is not None and mono - last < TOUCH_EVERY_S:
            return
        _touched[token_id] = mono
    try:
        wf.store.tokens.touch(token_id, now)  # type: ignore[attr-defined]
    except Exception as exc:  # bookkeeping only: a busy database must not fail the request
        log.warning("could not note the use of token %s: %s", token_id, exc)


def require(scope: str) -> Callable[..., Caller]:
    """A dependency yielding the caller if its token holds ``scope`` (admin implies read)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def dependency(caller: Annotated[Caller, Depends(_authenticated)]) -> Caller:
        if caller.may(scope) or (scope == "read" and caller.may("admin")):
            return caller
        raise ApiProblem(
            "forbidden",
            f"this token lacks the {scope!r} scope (it has: {', '.join(sorted(caller.scopes))}); "
            f"create one with 'python run.py tokens create {caller.user} --scopes {scope}'",
            required_scope=scope,
        )

    dependency.__name__ = f"require_{scope}"
    return dependency


Reader = Annotated[Caller, Depends(require("read"))]
Actor = Annotated[Caller, Depends(require("act"))]
Admin = Annotated[Caller, Depends(require("admin"))]
