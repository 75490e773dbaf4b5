"""``channels.yaml``: the named notification channels an owner has configured.

Owners edit YAML; secrets never live in it. Every secret field holds a reference,
``${ENV_VAR}`` or ``file:path`` (relative to the YAML file), resolved when the file is
loaded with the environment passed in, so a missing variable is reported at serve start
with its name and position, not at the first failed send. All problems are reported at
once as ``file:line:col``; no message or repr ever contains a secret's value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr, ValidationError, field_validator

from engine.errors import DefinitionError, Problem
from engine.org import ID_PATTERN
from engine.validation import Frozen, parse_model, pydantic_problems
from engine.yamlsafe import Document, PathKey, load_file, load_text
from notifiers.channels import dingtalk, feishu, wecom
from notifiers.channels.base import Channel
from notifiers.channels.clock import Clock, utcnow
from notifiers.channels.console import ConsoleChannel
from notifiers.channels.dingtalk import DingTalkChannel
from notifiers.channels.feishu import FeishuChannel
from notifiers.channels.ratelimit import RateLimit, RateLimiter
from notifiers.channels.smtp import EmailChannel
from notifiers.channels.webhook import WebhookChannel, secret_key
from notifiers.channels.wecom import WeComChannel

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_FILE_REF = "file:"


class RateLimitSpec(Frozen):
    messages: int = Field(gt=0, description="How many messages may go in one period.")
    per_seconds: int = Field(default=60, gt=0, description="The period, in seconds.")


class _Spec(Frozen):
    rate_limit: RateLimitSpec | None = None
    timeout: float = Field(default=10.0, gt=0, le=120, description="Seconds per attempt.")


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value


class ConsoleSpec(_Spec):
    type: Literal["console"]


class EmailSpec(_Spec):
    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, gt=0, lt=65536)
    mode: Literal["plain", "starttls", "ssl"] = "starttls"
    sender: str = Field(min_length=3, description="From: header, e.g. 'Shenpi <s@x.cn>'.")
    username: str | None = None
    password: SecretStr | None = None
    message_id_domain: str | None = None

    @property
    def effective_port(self) -> int:
        return self.port or {"plain": 25, "starttls": 587, "ssl": 465}[self.mode]


class _HttpSpec(_Spec):
    """The webhook and the robots: each posts to an http(s) URL, checked once here."""

    url: str

    _url = field_validator("url")(_http_url)


class WebhookSpec(_HttpSpec):
    type: Literal["webhook"]
    secrets: tuple[SecretStr, ...] = Field(min_length=1, max_length=2)


class DingTalkSpec(_HttpSpec):
    type: Literal["dingtalk"]
    url: str = dingtalk.DEFAULT_URL
    token: SecretStr
    secret: SecretStr | None = None


class WeComSpec(_HttpSpec):
    type: Literal["wecom"]
    url: str = wecom.DEFAULT_URL
    key: SecretStr


class FeishuSpec(_HttpSpec):
    type: Literal["feishu"]
    url: str = feishu.DEFAULT_URL
    token: SecretStr
    secret: SecretStr | None = None


ChannelSpec = ConsoleSpec | EmailSpec | WebhookSpec | DingTalkSpec | WeComSpec | FeishuSpec

SPECS: dict[str, type[_Spec]] = {
    "console": ConsoleSpec,
    "email": EmailSpec,
    "webhook": WebhookSpec,
    "dingtalk": DingTalkSpec,
    "wecom": WeComSpec,
    "feishu": FeishuSpec,
}

# The robots' own published limits; an owner may set a lower one.
DEFAULT_RATE = {
    "dingtalk": RateLimit(20, timedelta(minutes=1)),
    "wecom": RateLimit(20, timedelta(minutes=1)),
    "feishu": RateLimit(100, timedelta(minutes=1)),
}

SECRET_FIELDS = ("password", "token", "secret", "key")


class _File(Frozen):
    channels: dict[str, dict[str, Any]]
    route: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Per event, the channels that carry it (default: every channel).",
    )


@dataclass(frozen=True)
class ChannelsConfig:
    """The validated file, secrets resolved (as SecretStr, which never prints its value)."""

    file: str
    channels: dict[str, ChannelSpec]
    route: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def rate_limit(self, name: str) -> RateLimit | None:
        spec = self.channels[name]
        if spec.rate_limit is not None:
            rl = spec.rate_limit
            return RateLimit(rl.messages, timedelta(seconds=rl.per_seconds))
        return DEFAULT_RATE.get(spec.type)

    def limiters(self) -> dict[str, RateLimiter]:
        out = {}
        for name in self.channels:
            limit = self.rate_limit(name)
            if limit is not None:
                out[name] = RateLimiter(limit)
        return out

    def build(
        self, clock: Clock = utcnow, client: httpx.Client | None = None
    ) -> dict[str, Channel]:
        """One channel object per name; ``client`` lets tests share one HTTP client."""
        return {name: build(name, spec, clock, client) for name, spec in self.channels.items()}


def build(
    name: str,
    spec: ChannelSpec,
    clock: Clock = utcnow,
    client: httpx.Client | None = None,
    write: Callable[[str], None] | None = None,
) -> Channel:
    if isinstance(spec, ConsoleSpec):
        return ConsoleChannel(write, name=name)
    if isinstance(spec, EmailSpec):
        return EmailChannel(
            name=name,
            host=spec.host,
            port=spec.effective_port,
            sender=spec.sender,
            mode=spec.mode,
            username=spec.username,
            password=spec.password,
            timeout=spec.timeout,
            message_id_domain=spec.message_id_domain,
            clock=clock,
        )
    http = client or httpx.Client(timeout=spec.timeout)
    if isinstance(spec, WebhookSpec):
        return WebhookChannel(
            name=name, url=spec.url, secrets=spec.secrets, clock=clock, client=http
        )
    if isinstance(spec, DingTalkSpec):
        return DingTalkChannel(
            name=name, token=spec.token, secret=spec.secret, url=spec.url, clock=clock, client=http
        )
    if isinstance(spec, WeComSpec):
        return WeComChannel(name=name, key=spec.key, url=spec.url, clock=clock, client=http)
    return FeishuChannel(
        name=name, token=spec.token, secret=spec.secret, url=spec.url, clock=clock, client=http
    )


def config_file(
    option: str | None, env: Mapping[str, str], env_var: str, processes: Path, default: str
) -> Path | None:
    """Where an optional config file is: the ``--option`` value, else ``$env_var``, else
    ``default`` beside the processes if it exists; None when there is none. Shared so
    channels.yaml and hooks.yaml are found by the same rule."""
    chosen = option or env.get(env_var)
    if chosen:
        return Path(chosen)
    beside = processes / default
    return beside if beside.exists() else None


def resolve_secret(
    doc: Document, path: PathKey, ref: SecretStr, env: Mapping[str, str], base: Path
) -> tuple[SecretStr | None, Problem | None]:
    """A secret field's value: ``${ENV_VAR}`` from ``env`` or ``file:path`` (relative to
    ``base``); anything else is refused, so no secret is ever written into the YAML.
    Shared by every YAML file that holds secrets (channels.yaml, hooks.yaml)."""
    raw = ref.get_secret_value()
    match = _ENV_REF.match(raw)
    if match:
        var = match[1]
        if var not in env:
            return None, doc.problem(
                path, f"environment variable {var} is not set; export it before starting"
            )
        if not env[var]:
            return None, doc.problem(path, f"environment variable {var} is empty")
        return SecretStr(env[var]), None
    if raw.startswith(_FILE_REF):
        target = Path(raw[len(_FILE_REF) :].strip())
        target = target if target.is_absolute() else base / target
        try:
            value = target.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            return None, doc.problem(path, f"cannot read secret file {str(target)!r}: {reason}")
        if not value:
            return None, doc.problem(path, f"secret file {str(target)!r} is empty")
        return SecretStr(value), None
    return None, doc.problem(
        path,
        "a secret must be a ${ENV_VAR} reference or a 'file:' path, never the secret "
        "itself; move it out of this file",
    )


def _raw_secret_problems(
    doc: Document, at: PathKey, data: dict[str, Any], env: Mapping[str, str], base: Path
) -> list[Problem]:
    """Secret problems of a channel that failed validation, so all are reported in one round."""
    refs: list[tuple[PathKey, Any]] = [((*at, f), data.get(f)) for f in SECRET_FIELDS]
    listed = data.get("secrets")
    if isinstance(listed, list):
        refs += [((*at, "secrets", i), v) for i, v in enumerate(listed)]
    problems = []
    for path, value in refs:
        if isinstance(value, str):
            problem = resolve_secret(doc, path, SecretStr(value), env, base)[1]
            problems += [problem] if problem else []
    return problems


def _channel(
    doc: Document, name: str, data: Any, env: Mapping[str, str], base: Path
) -> tuple[ChannelSpec | None, list[Problem]]:
    at: PathKey = ("channels", name)
    if not re.match(ID_PATTERN, name):
        return None, [doc.problem(at, f"channel name {name!r} must match {ID_PATTERN}")]
    kind = data.get("type") if isinstance(data, dict) else None
    if kind is None:
        return None, [doc.problem(at, "missing required key 'type'")]
    model = SPECS.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = ", ".join(SPECS)
        return None, [
            doc.problem((*at, "type"), f"unknown channel type {kind!r}; use one of {known}")
        ]
    try:
        spec: Any = model.model_validate(data)
    except ValidationError as exc:
        return None, pydantic_problems(doc, exc, at) + _raw_secret_problems(
            doc, at, data, env, base
        )
    problems: list[Problem] = []
    update: dict[str, Any] = {}
    for field in SECRET_FIELDS:
        ref = getattr(spec, field, None)
        if ref is not None:
            value, problem = resolve_secret(doc, (*at, field), ref, env, base)
            problems += [problem] if problem else []
            update[field] = value
    if isinstance(spec, WebhookSpec):
        resolved = []
        for i, ref in enumerate(spec.secrets):
            value, problem = resolve_secret(doc, (*at, "secrets", i), ref, env, base)
            if problem is None and value is not None:
                try:
                    secret_key(value.get_secret_value())
                except ValueError as exc:
                    problem = doc.problem((*at, "secrets", i), str(exc))
            problems += [problem] if problem else []
            resolved.append(value)
        update["secrets"] = tuple(resolved)
    if problems:
        return None, problems
    return spec.model_copy(update=update), []


def load_channels(doc: Document, env: Mapping[str, str]) -> ChannelsConfig:
    """Validate a channels document and resolve its secret references from ``env``."""
    top = parse_model(_File, doc)
    base = Path(doc.file).parent
    problems: list[Problem] = []
    channels: dict[str, ChannelSpec] = {}
    for name, data in top.channels.items():
        spec, found = _channel(doc, name, data, env, base)
        problems += found
        if spec is not None:
            channels[name] = spec
    for event, names in top.route.items():
        for i, name in enumerate(names):
            if name not in top.channels:
                known = ", ".join(top.channels) or "none"
                problems.append(
                    doc.problem(
                        ("route", event, i),
                        f"route {event!r} names unknown channel {name!r}; channels: {known}",
                    )
                )
    if problems:
        raise DefinitionError(problems)
    return ChannelsConfig(doc.file, channels, dict(top.route))


def load_channels_text(text: str, file: str, env: Mapping[str, str]) -> ChannelsConfig:
    return load_channels(load_text(text, file), env)


def load_channels_file(path: Path | str, env: Mapping[str, str]) -> ChannelsConfig:
    return load_channels(load_file(path), env)
