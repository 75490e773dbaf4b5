"""``hooks.yaml``: the systems allowed to act for people through ``POST /v1/hooks/{sender}``.

Each sender (a chat bot, an ERP) has its own Standard Webhooks secret (``whsec_...``; two
during a rotation), the users it may act for, and the processes it may start for them.
Secrets are references, ``${ENV_VAR}`` or ``file:path``, resolved when the file is loaded
(the same rule as channels.yaml: notifiers.config.resolve_secret), so a missing variable
is reported at start with its position and no value is ever printed. Every problem is
reported at once as ``file:line:col``.

    senders:
      erp:
        secrets: ["${SHENPI_HOOK_ERP}"]      # "whsec_" + base64; a second one while rotating
        acts_for: [wang.fang, zhao.lei]      # user ids from org.yaml
        may_start: [complaint]               # optional: processes it may start
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError

from engine.errors import DefinitionError, Problem
from engine.org import ID_PATTERN, Org
from engine.validation import Frozen, parse_model, pydantic_problems
from engine.yamlsafe import Document, load_file, load_text
from notifiers.channels.webhook import secret_key
from notifiers.config import config_file, resolve_secret

ENV_VAR = "SHENPI_HOOKS"
DEFAULT_FILE = "hooks.yaml"


class SenderSpec(Frozen):
    secrets: tuple[SecretStr, ...] = Field(
        min_length=1,
        max_length=2,
        description="The sender's whsec_ secret as ${ENV_VAR} or file:path; two while rotating.",
    )
    acts_for: tuple[str, ...] = Field(
        min_length=1, description="User ids (org.yaml) this sender may act for."
    )
    may_start: tuple[str, ...] = Field(
        default=(), description="Processes this sender may start for those users."
    )


class _File(Frozen):
    senders: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Sender:
    """One validated sender: secrets resolved (SecretStr never prints its value)."""

    name: str
    secrets: tuple[SecretStr, ...]
    acts_for: frozenset[str]
    may_start: frozenset[str]


@dataclass(frozen=True)
class HooksConfig:
    file: str
    senders: Mapping[str, Sender]


def _sender(
    doc: Document, name: str, data: Any, env: Mapping[str, str], org: Org | None
) -> tuple[Sender | None, list[Problem]]:
    at = ("senders", name)
    if not re.match(ID_PATTERN, name):
        return None, [doc.problem(at, f"sender name {name!r} must match {ID_PATTERN}")]
    try:
        spec = SenderSpec.model_validate(data)
    except ValidationError as exc:
        return None, pydantic_problems(doc, exc, at)
    problems: list[Problem] = []
    resolved: list[SecretStr] = []
    for i, ref in enumerate(spec.secrets):
        value, problem = resolve_secret(doc, (*at, "secrets", i), ref, env, Path(doc.file).parent)
        if problem is None and value is not None:
            try:
                secret_key(value.get_secret_value())
            except ValueError as exc:
                problem = doc.problem((*at, "secrets", i), str(exc))
        if problem is not None:
            problems.append(problem)
        elif value is not None:
            resolved.append(value)
    for i, user in enumerate(spec.acts_for):
        if org is not None and user not in org.users:
            message = f"sender {name!r} acts for unknown user {user!r}; see 'python run.py users'"
            problems.append(doc.problem((*at, "acts_for", i), message))
    for i, process in enumerate(spec.may_start):
        if not re.match(ID_PATTERN, process):
            message = f"process name {process!r} must match {ID_PATTERN}"
            problems.append(doc.problem((*at, "may_start", i), message))
    if problems:
        return None, problems
    return Sender(name, tuple(resolved), frozenset(spec.acts_for), frozenset(spec.may_start)), []


def load_hooks(doc: Document, env: Mapping[str, str], org: Org | None = None) -> HooksConfig:
    """Validate a hooks document, resolve its secrets from ``env`` and, given ``org``, check
    that every user a sender acts for exists. DefinitionError with every problem."""
    top = parse_model(_File, doc)
    problems: list[Problem] = []
    senders: dict[str, Sender] = {}
    for name, data in top.senders.items():
        sender, found = _sender(doc, name, data, env, org)
        problems += found
        if sender is not None:
            senders[name] = sender
    if problems:
        raise DefinitionError(problems)
    return HooksConfig(doc.file, senders)


def load_hooks_text(
    text: str, file: str, env: Mapping[str, str], org: Org | None = None
) -> HooksConfig:
    return load_hooks(load_text(text, file), env, org)


def hooks_file(option: str | None, processes: Path, env: Mapping[str, str]) -> Path | None:
    """``--hooks``, else $SHENPI_HOOKS, else hooks.yaml beside the processes (like
    channels.yaml); None when there is none: then no sender is accepted."""
    return config_file(option, env, ENV_VAR, processes, DEFAULT_FILE)


def load(
    option: str | None,
    processes: Path,
    env: Mapping[str, str] | None = None,
    org: Org | None = None,
) -> HooksConfig | None:
    env = os.environ if env is None else env
    path = hooks_file(option, processes, env)
    return None if path is None else load_hooks(load_file(path), env, org)
