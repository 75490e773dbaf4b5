"""Limits on what one request may cost: body size, body read time, and a rate per token.

The body limit is a plain ASGI middleware in front of everything (FastAPI's own
``max_body_size`` answers text/plain): a declared ``Content-Length`` over the limit is
refused before a byte is read, a chunked body when it crosses the limit. A client that
sends its body slower than ``body_timeout`` (a slow-loris) is answered 408. The rate
limit is a token bucket per API token, in memory: one server's view, reset on restart.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import MEDIA_TYPE, problem_body


class BodyLimit:
    """ASGI middleware: 413 for bodies over ``max_bytes``, 408 for bodies read too slowly."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _refuse(send, 413, "body-too-large", self._too_large())
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            try:
                with anyio.fail_after(self.timeout):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, "the request body was not received in time") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._too_large())
            return message

        await self.app(scope, limited, send)

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, status: int, slug: str, detail: str) -> None:
    body = problem_body(slug, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass
class RateLimiter:
    """A token bucket per key: ``burst`` requests at once, refilled at ``per_second``.

    ``take`` answers None (go ahead) or the seconds until one request would be allowed,
    which the API sends as ``Retry-After`` (whole seconds, at least 1).
    """

    per_second: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str) -> int | None:
        if self.per_second <= 0:
            return None
        now = self.clock()
        with self._lock:
            level, last = self._buckets.get(key, (float(self.burst), now))
            level = min(float(self.burst), level + (now - last) * self.per_second)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return None
            self._buckets[key] = (level, now)
            return max(1, math.ceil((1.0 - level) / self.per_second))
