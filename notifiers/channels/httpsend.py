"""One POST over httpx, classified into ok / transient / permanent.

Shared by the webhook and robot channels so that timeouts, 5xx and 429 mean the same
thing everywhere. Robots answer HTTP 200 with an error code in the body; each robot
channel reads that body itself through ``check``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from notifiers.channels.base import Delivery, ok, permanent, retry_after_seconds, transient

Check = Callable[[Any], Delivery]


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
