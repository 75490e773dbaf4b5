"""``/v1/me``: who the token acts as, so an integration can check its setup in one call."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from api.auth import Reader
from api.deps import workflow
from api.routes import router
from api.schemas import Me

api = router("me")


@api.get("/me", response_model=Me, summary="Who this token acts as")
def me(request: Request, caller: Reader) -> dict[str, Any]:
    """The token's user as the org directory has them (roles, active, delegate), and the
    token's id and scopes."""
    user = workflow(request).org.user(caller.user)
    return {
        "user": caller.user,
        "name": user.name,
        "roles": list(user.roles),
        "active": user.active,
        "delegate": user.delegate,
        "token_id": caller.token_id,
        "scopes": sorted(caller.scopes),
    }
