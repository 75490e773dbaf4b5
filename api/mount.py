"""Put the webhook endpoint, the action links and Idempotency-Key handling on an app.

One call in the app factory (api/app.py ``create_app``), before the app's own routers
are included, so the pieces that must go together do: the ``Reply`` handler the
dependencies answer through, the middleware that stores responses for replay, and a
dependency on every route that honours ``Idempotency-Key`` on POSTs made with an API
token (scoped to that token). The webhook and link routes scope keys their own way.

Configuration comes from the environment unless given: ``SHENPI_HOOKS`` (else
``hooks.yaml`` in the processes folder; none: every sender is refused) and
``SHENPI_PUBLIC_URL`` with the link key variables (api/linktokens.py; none: no links).
"""

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import Request

from api.hookconfig import HooksConfig
from api.hookconfig import load as load_hooks
from api.hooks import hooks_router
from api.idempotency import HEADER, IdempotencyGuard, install
from api.links import links_router
from api.linktokens import ActionLinks
from api.linktokens import from_env as links_from_env
from engine.errors import NotAuthenticated
from storage.idempotency import IdempotencyKeys

# No `from __future__ import annotations`: FastAPI reads the dependency's annotations.

FROM_ENV: Any = object()  # "read it from the environment" (None means "none")


def mount_acting(
    app: Any,
    workflow: Any,
    *,
    hooks: HooksConfig | None = FROM_ENV,
    links: ActionLinks | None = FROM_ENV,
    clock: Callable[[], datetime] | None = None,
) -> IdempotencyGuard:
    """Add ``/v1/hooks/{sender}``, ``/a/{token}`` (when there are links: a public URL is
    configured) and Idempotency-Key support to ``app``; returns the guard."""
    clock = clock or (lambda: workflow.clock())  # a test may swap the Workflow's clock
    if workflow is None:  # an app made only for its OpenAPI document: no storage at all
        guard = install(app, None, clock)
        app.router.dependencies.append(guard.dependency(lambda: None))
        return guard
    if hooks is FROM_ENV:
        hooks = load_hooks(None, workflow.processes_dir, os.environ, workflow.org)
    if links is FROM_ENV:
        links = links_from_env(None)
    guard = install(app, IdempotencyKeys(workflow.store), clock)
    app.include_router(hooks_router(workflow, hooks, clock, guard))
    if links is not None:
        app.include_router(links_router(workflow, links, clock, guard))

    def token_scope(request: Request) -> str | None:
        """``token:<id>`` of a live bearer token on a POST with a key; None otherwise.

        Checked here (and again by the route) so a revoked token's stored answers are
        not replayed to it: its retry goes on to the route and gets the route's 401.
        """
        auth = request.headers.get("authorization", "")
        if request.method != "POST" or HEADER.lower() not in request.headers:
            return None
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        from service.tokens import authenticate

        try:
            caller, _row = authenticate(workflow, token.strip(), clock())
        except NotAuthenticated:
            return None
        return f"token:{caller.token_id}"

    # routes included from here on (the app's own) get the dependency
    app.router.dependencies.append(guard.dependency(token_scope))
    return guard
