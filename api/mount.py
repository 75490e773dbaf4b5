"""Put the webhook endpoint, the action links and Idempotency-Key handling on an app.

One call for the app factory (api/app.py ``create_app``), so the pieces that must go
together do: the ``Reply`` handler the routers' dependencies answer through, the
middleware that stores responses for replay, and the guard the other routers use.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from api.hookconfig import HooksConfig
from api.hooks import hooks_router
from api.idempotency import IdempotencyGuard, install
from api.links import links_router
from api.linktokens import ActionLinks
from storage.idempotency import IdempotencyKeys


def mount_acting(
    app: Any,
    workflow: Any,
    clock: Callable[[], datetime],
    hooks: HooksConfig | None,
    links: ActionLinks | None,
) -> IdempotencyGuard:
    """Add ``/v1/hooks/{sender}``, ``/a/{token}`` (when ``links`` is set: a public URL is
    configured) and Idempotency-Key support to ``app``. Returns the guard: each POST router
    of the app adds ``guard.dependency(its caller scope)`` to its dependencies."""
    guard = install(app, IdempotencyKeys(workflow.store), clock)
    app.include_router(hooks_router(workflow, hooks, clock, guard))
    if links is not None:
        app.include_router(links_router(workflow, links, clock, guard))
    return guard
