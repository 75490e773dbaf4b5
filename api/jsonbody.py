"""Request bodies read like the CLI's ``--data``: exact numbers, no duplicate keys, bounded.

FastAPI parses JSON with ``json.loads``: ``1000.10`` would become a binary float (which
the engine refuses as inexact), ``{"a":1,"a":2}`` would silently keep the last value, and
``NaN`` would pass. Routes of class :class:`ExactJSONRoute` read bodies with decimals and
refuse the rest as malformed JSON (400), before any model sees them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from engine.values import MAX_JSON_DEPTH, json_depth


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"duplicate key {key!r}")
        found[key] = value
    return found


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def loads_exact(body: bytes) -> Any:
    """JSON with Decimal numbers; json.JSONDecodeError (FastAPI's 400) for anything else."""
    text = body.decode("utf-8")  # UnicodeDecodeError: answered 400 too
    try:
        value = json.loads(
            text, parse_float=Decimal, parse_constant=_constant, object_pairs_hook=_unique
        )
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None
    except ValueError as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise json.JSONDecodeError(f"nested deeper than {MAX_JSON_DEPTH} levels", text, 0)
    return value


class ExactJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_exact(await self.body())
        return self._json


class ExactJSONRoute(APIRoute):
    """An APIRoute whose JSON bodies are read by :func:`loads_exact`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(ExactJSONRequest(request.scope, request.receive))

        return exact
