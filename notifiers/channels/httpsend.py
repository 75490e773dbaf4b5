"""One POST over httpx, classified into ok / transient / permanent.

Shared by the webhook and robot channels so that timeouts, 5xx and 429 mean the same
thing everywhere. Robots answer HTTP 200 with an error code in the body; each robot
channel reads that body itself through ``check``, built on :func:`check_code` so that
"code 0 is ok, a listed code is worth retrying, anything else is final" reads the same in
every robot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar, TypedDict, Unpack

import httpx
from pydantic import SecretStr

from notifiers.channels.base import (
    Delivery,
    ok,
    permanent,
    retry_after_seconds,
    scrub,
    transient,
)
from notifiers.channels.clock import Clock, utcnow

Check = Callable[[Any], Delivery]

JSON_HEADERS = {"content-type": "application/json; charset=utf-8"}


def post(
    client: httpx.Client,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime,
    check: Check | None = None,
) -> Delivery:
    """POST ``body``; never raises for network or server trouble.

    ``url`` may carry a token, so it is never put into the detail.
    """
    try:
        response = client.post(url, content=body, headers=dict(headers))
    except httpx.TimeoutException as exc:
        return transient(f"timed out ({type(exc).__name__})")
    except httpx.TransportError as exc:
        return transient(f"connection failed ({type(exc).__name__}: {exc})")
    status = response.status_code
    snippet = response.text[:200]
    if status == 429 or status == 408:
        wait = retry_after_seconds(response.headers.get("retry-after"), now)
        return transient(f"HTTP {status}: {snippet}", wait)
    if status >= 500:
        wait = retry_after_seconds(response.headers.get("retry-after"), now)
        return transient(f"HTTP {status}: {snippet}", wait)
    if status >= 300:
        return permanent(f"HTTP {status}: {snippet}")
    if check is None:
        return ok(f"HTTP {status}")
    try:
        parsed = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return permanent(f"HTTP {status} with a body that is not JSON: {snippet}")
    return check(parsed)


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON: the exact bytes that are signed are the bytes that are sent."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _first(body: Mapping[str, Any], keys: tuple[str, ...], default: Any = None) -> Any:
    """The value of the first of ``keys`` the body has (vendors renamed fields over time)."""
    for key in keys:
        if key in body:
            return body[key]
    return default


def check_code(
    body: object,
    *,
    codes: tuple[str, ...],
    messages: tuple[str, ...],
    retry: Mapping[int, float | None],
) -> Delivery:
    """Read a robot's HTTP-200 reply: code 0 is ok, a code in ``retry`` is transient.

    ``codes``/``messages`` are the field names the vendor uses, first match wins; ``retry``
    maps each throttling or busy code to the seconds to wait (None: the outbox's backoff).
    A reply without a code is permanent: the robot answered something we cannot read.
    """
    if not isinstance(body, dict):
        return permanent(f"unexpected reply: {str(body)[:200]}")
    code = _first(body, codes)
    if code == 0:
        return ok()
    if code is None:
        return permanent(f"unexpected reply: {str(body)[:200]}")
    what = f"{codes[0]} {code}: {_first(body, messages, '')}"
    if code in retry:
        return transient(what, retry[code])
    return permanent(what)


class HttpOptions(TypedDict, total=False):
    """What every HTTP channel accepts besides its own secrets."""

    name: str
    url: str
    timeout: float
    clock: Clock
    client: httpx.Client | None


class HttpChannel:
    """The name, endpoint, clock and HTTP client that the webhook and robot channels share.

    ``client`` lets tests and the outbox share one connection pool; when it is not given a
    client is made with ``timeout``. The repr shows only name and URL, never a secret.
    """

    default_name: ClassVar[str]
    default_url: ClassVar[str] = ""  # unused by the webhook, whose ``url`` is required

    def __init__(self, **options: Unpack[HttpOptions]) -> None:
        self.name: str = options.get("name", self.default_name)
        self.url: str = options.get("url", self.default_url)
        self.clock: Clock = options.get("clock", utcnow)
        self.client: httpx.Client = options.get("client") or httpx.Client(
            timeout=options.get("timeout", 10.0)
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, url={self.url!r})"

    def post_json(
        self, url: str, payload: object, now: datetime, check: Check, secrets: Iterable[str]
    ) -> Delivery:
        """POST a robot's JSON payload and blank any secret echoed back in the detail."""
        return scrub(post(self.client, url, dumps(payload), JSON_HEADERS, now, check), secrets)


class SignedRobotChannel(HttpChannel):
    """A robot addressed by a token and, when the group enables signing, a secret (DingTalk
    and Feishu): each robot signs in its own way, but keeps the two alike."""

    def __init__(
        self, *, token: SecretStr, secret: SecretStr | None = None, **options: Unpack[HttpOptions]
    ) -> None:
        super().__init__(**options)
        self._token = token
        self._secret = secret
