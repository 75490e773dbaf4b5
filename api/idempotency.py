"""``Idempotency-Key`` on POST: a retry gets the first result instead of a second action.

Following draft-ietf-httpapi-idempotency-key-header (and Stripe's practice):

* The header is optional. Its value is an RFC 8941 string (``"8e03..."``) or a bare token,
  1 to 255 printable ASCII characters; anything else is 400.
* A key belongs to one caller (its *scope*: the API token, the webhook sender, the link),
  so two callers never see each other's keys.
* The first request with a key claims it in the database (so it holds across restarts and
  workers). When it completes with a 2xx, its status, headers and body are stored before
  the client sees them, and every retry with the same key and the same request (method,
  path, query and body; JSON compared after sorting keys) gets them back with
  ``Idempotent-Replayed: true``. The same key with another request is 422. A retry while
  the first is still running is 409 (with ``Retry-After``).
* A request that ends in anything but a 2xx keeps nothing: the refusal changed nothing,
  so a corrected retry with the same key runs afresh.
* Keys are kept 24 hours from their first use, then pruned.

Two pieces: :meth:`Idempotency.dependency` (a FastAPI dependency for a router or a route,
given the dependency that names the caller's scope) claims the key before the endpoint
runs; :class:`Idempotency` itself is the ASGI middleware that stores the response.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run
# time, and some name dependencies local to the router factory.

import hashlib
import json
import time
from collections.abc import Callable, MutableMapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problem_reply import Reply, problem
from storage.idempotency import IdempotencyKeys

Clock = Callable[[], datetime]
HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY = 255
PRUNE_EVERY_S = 600.0
_STATE = "shenpi.idempotency"
# Response headers worth replaying (not Date, Server, Content-Length: those are remade).
_KEPT_HEADERS = ("content-type", "location", "www-authenticate", "retry-after", "link")


def parse_key(raw: str) -> str:
    """The key of a header value: an sf-string or a bare token; ValueError if invalid."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner, out, escaped = value[1:-1], [], False
        for ch in inner:
            if escaped:
                if ch not in '"\\':
                    raise ValueError('only \\" and \\\\ may be escaped in a quoted key')
                out.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                raise ValueError("a quote inside a quoted key must be escaped")
            else:
                out.append(ch)
        if escaped:
            raise ValueError("the quoted key ends in a lone backslash")
        value = "".join(out)
    elif '"' in value or "\\" in value:
        raise ValueError('a key with " or \\ in it must be a quoted, escaped string')
    if not 1 <= len(value) <= MAX_KEY:
        raise ValueError(f"the key must be 1 to {MAX_KEY} characters")
    if any(not (0x20 <= ord(ch) <= 0x7E) for ch in value):
        raise ValueError("the key must be printable ASCII")
    return value


def _number(text: str) -> list[str]:
    return ["\0number", text]  # keeps 1 apart from "1" and 1.0 apart from 1


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """What "the same request" means: JSON bodies compare by value (key order and spacing
    do not matter, numbers as written), other bodies byte for byte."""
    try:
        parsed = json.loads(body, parse_int=_number, parse_float=_number)
        canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        canonical = b"raw:" + body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def authorization_scope(request: Request) -> str:
    """A scope per credential when the caller's own dependency is not at hand: a hash of
    the Authorization header (a token, never stored as such)."""
    auth = request.headers.get("authorization", "")
    return "auth:" + hashlib.sha256(auth.encode()).hexdigest()[:32]


class Idempotency:
    """The ASGI middleware that stores a claimed request's 2xx response before sending it.

    Install with ``app.add_middleware(Idempotency, keys=..., clock=...)`` — or, as
    :func:`install` does, build one and keep it to make the dependency.
    """

    def __init__(self, app: ASGIApp, keys: IdempotencyKeys | None, clock: Clock) -> None:
        self.app = app
        self.keys = keys
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or self.keys is None:
            await self.app(scope, receive, send)
            return
        state: MutableMapping[str, Any] = scope.setdefault("state", {})
        held: list[Message] = []

        async def keep(message: Message) -> None:
            claim = state.get(_STATE)
            if claim is None or claim.get("done"):
                await send(message)
                return
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                await self._finish(claim, held)
                claim["done"] = True
                for m in held:
                    await send(m)

        try:
            await self.app(scope, receive, keep)
        finally:
            claim = state.get(_STATE)
            if claim is not None and not claim.get("done"):  # no complete response: forget
                claim["done"] = True
                await run_in_threadpool(
                    self.keys.release, claim["scope"], claim["key"], claim["claimed_at"]
                )

    async def _finish(self, claim: dict[str, Any], held: list[Message]) -> None:
        start = next(m for m in held if m["type"] == "http.response.start")
        status = int(start["status"])
        if not 200 <= status < 300:
            await run_in_threadpool(
                self.keys.release, claim["scope"], claim["key"], claim["claimed_at"]
            )
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in start.get("headers", [])
            if k.decode("latin-1").lower() in _KEPT_HEADERS
        }
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        await run_in_threadpool(
            self.keys.complete,
            claim["scope"],
            claim["key"],
            claim["claimed_at"],
            status,
            headers,
            body,
        )


class IdempotencyGuard:
    """Makes the per-router dependency that claims a POST's key before its endpoint runs."""

    def __init__(self, keys: IdempotencyKeys | None, clock: Clock) -> None:
        self.keys = keys
        self.clock = clock
        self._pruned = 0.0

    def dependency(self, scope_of: Callable[..., Any] = authorization_scope) -> Any:
        """``Depends(...)`` for ``APIRouter(dependencies=[...])`` or a route: ``scope_of``
        is a dependency returning the caller's scope (e.g. ``token:<id>``), or None when
        the request has no caller it could belong to (then the key is not honoured and
        the route's own authentication answers)."""

        async def claim(request: Request, scope: Annotated[str | None, Depends(scope_of)]) -> None:
            state = request.scope.setdefault("state", {})
            if request.method != "POST" or scope is None or _STATE in state or not self.keys:
                return  # not a POST, no caller to scope it to, or claimed already
            raw = request.headers.get(HEADER)
            if raw is None:
                return
            try:
                key = parse_key(raw)
            except ValueError as exc:
                raise Reply(problem("malformed-request", f"{HEADER}: {exc}")) from None
            body = await request.body()
            print_ = fingerprint(request.method, request.url.path, request.url.query, body)
            now = self.clock()
            await self._prune(now)
            found = await run_in_threadpool(self.keys.claim, scope, key, print_, now)
            if found.verdict == "replay":
                headers = dict(found.headers or {}) | {REPLAYED: "true"}
                media = headers.pop("content-type", None)
                raise Reply(
                    Response(
                        found.body or b"",
                        status_code=int(found.http_status or 200),
                        headers=headers,
                        media_type=media,
                    )
                )
            if found.verdict == "mismatch":
                detail = f"{HEADER} {key!r} was used for another request; use a new key"
                raise Reply(problem("idempotency-key-reused", detail))
            if found.verdict == "busy":
                detail = f"a request with {HEADER} {key!r} is still being handled; retry"
                raise Reply(problem("in-progress", detail, headers={"Retry-After": "1"}))
            state[_STATE] = {
                "scope": scope,
                "key": key,
                "claimed_at": found.claimed_at,
            }

        return Depends(claim)

    async def _prune(self, now: datetime) -> None:
        if time.monotonic() - self._pruned < PRUNE_EVERY_S:
            return
        self._pruned = time.monotonic()
        await run_in_threadpool(self.keys.prune, now)


def install(app: Any, keys: IdempotencyKeys | None, clock: Clock) -> IdempotencyGuard:
    """Add the middleware and the handler of guard replies to ``app``; the returned guard
    makes the dependency each router adds (``guard.dependency(scope_of)``)."""
    app.add_middleware(Idempotency, keys=keys, clock=clock)
    app.add_exception_handler(Reply, reply_handler)
    return IdempotencyGuard(keys, clock)


async def reply_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Reply)
    return exc.response


__all__: list[str] = ["HEADER", "Idempotency", "IdempotencyGuard", "install", "parse_key"]
