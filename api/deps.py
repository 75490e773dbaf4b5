"""What every route reaches through the request: the app's state (workflow, limits)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from api.limits import RateLimiter
from service.workflow import Workflow


@dataclass(frozen=True)
class ApiConfig:
    """The knobs of the HTTP face (``serve`` options)."""

    max_body_bytes: int = 256 * 1024
    body_timeout_s: float = 30.0
    rate_per_minute: float = 600.0  # per token; 0 switches the limit off
    rate_burst: int = 60
    cors_origins: tuple[str, ...] = ()
    hooks_file: str | None = None  # webhook senders (else $SHENPI_HOOKS, else hooks.yaml)
    public_url: str | None = None  # base of action links (else $SHENPI_PUBLIC_URL)


@dataclass
class ApiState:
    """One per app, on ``app.state.shenpi``: the Workflow every request calls, and limits.

    The Workflow is shared by the request threads: its store is thread-safe (a pool of
    connections) and its caches of compiled versions only ever add entries.
    """

    workflow: Workflow
    config: ApiConfig
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.config.rate_per_minute / 60.0, self.config.rate_burst)


def state(request: Request) -> ApiState:
    found: ApiState = request.app.state.shenpi
    return found


def workflow(request: Request) -> Workflow:
    return state(request).workflow
