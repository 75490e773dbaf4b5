"""Turn loaded YAML into frozen pydantic models, reporting every problem with its position."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.errors import DefinitionError, Problem
from engine.yamlsafe import Document, PathKey

M = TypeVar("M", bound=BaseModel)


class Frozen(BaseModel):
    """Base of every definition model: immutable, and unknown keys are errors.

    ``defer_build``: a model's validator is built on its first validation, not at import;
    a command that reads its definitions from the cache (service/defcache.py) validates
    none of them, and building them all took a good part of its start-up.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, defer_build=True)


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    loc = err.get("loc", ())
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}" if loc else "unknown key"
    if kind == "missing":
        return f"missing required key {loc[-1]!r}" if loc else "missing required key"
    msg = str(err.get("msg", "invalid value"))
    return msg[0].lower() + msg[1:] if msg else "invalid value"


def pydantic_problems(doc: Document, exc: ValidationError, base: PathKey = ()) -> list[Problem]:
    """Map pydantic's error locations back to file:line:col."""
    problems = []
    errors = exc.errors(include_url=False)
    for err in errors:
        if _other_member_meant(err, errors):
            continue
        # pydantic puts union-member / function names into loc; keep only real path parts
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        problems.append(doc.problem((*base, *loc), _message(err)))
    return problems


def _other_member_meant(err: Any, errors: list[Any]) -> bool:
    """A mapping given where a union takes text or a model (``delegate: user`` or
    ``delegate: {to: user, ...}``) was meant as the model: its errors say what is wrong,
    "input should be a valid string" beside them only confuses."""
    loc = err["loc"]
    if err.get("type") != "string_type" or not isinstance(err.get("input"), dict) or not loc:
        return False
    return any(o is not err and o["loc"][: len(loc) - 1] == loc[:-1] for o in errors)


def parse_model(model: type[M], doc: Document, data: Any = None, base: PathKey = ()) -> M:
    """Validate ``data`` (default: the whole document) as ``model`` or raise DefinitionError."""
    try:
        return model.model_validate(doc.data if data is None else data)
    except ValidationError as exc:
        raise DefinitionError(pydantic_problems(doc, exc, base)) from None
