"""One-time action links: the signed token, the key it is signed with, and what it binds.

A link is ``{public_url}/a/{token}``. The token is signed (itsdangerous, HMAC-SHA1 over
the payload, salted for this use) and names: the link's id, the task, the user, the
action, the task's version when the link was made, and when it expires. It is readable by
whoever holds it, not encrypted: it holds ids, never values. Nothing is stored when a link
is made; using one stores a row under its id (storage.actionlinks), so it acts once.

The task's version (:func:`task_version`) covers what decides *who* may act on it: its
slots (roles or named people), its mode and who claimed it. A transfer, an escalation that
reassigns it, or a claim by someone else makes the link stale; another signer's signature
on a countersigned task does not (the recipient still has to sign). A decided task makes
it stale too: the task is no longer open.

The key: ``SHENPI_LINK_SECRET`` (the key itself), or ``SHENPI_LINK_SECRET_FILE`` (one key
per line; the first signs, the others still verify, which is how a key is rotated), or
else a key generated on first use into ``$XDG_STATE_HOME/shenpi/link.key`` (default
``~/.local/state/shenpi``), readable by its owner only. Several servers behind one public
URL must share the key (set one of the variables).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from engine.errors import BadLink, LinkKeyError
from engine.records import TaskRecord

SECRET_ENV = "SHENPI_LINK_SECRET"
SECRET_FILE_ENV = "SHENPI_LINK_SECRET_FILE"
PUBLIC_URL_ENV = "SHENPI_PUBLIC_URL"
TTL_ENV = "SHENPI_LINK_HOURS"
DEFAULT_TTL = timedelta(hours=72)
MIN_SECRET_BYTES = 16
_SALT = "shenpi.action-link.v1"
_HOW = "e.g. python -c 'import secrets; print(secrets.token_hex(32))'"


def task_version(task: TaskRecord) -> str:
    """What a link to ``task`` is bound to besides its id: who may act on it."""
    meta = getattr(task, "meta", None) or {}
    parts = [task.id, list(task.roles), task.mode, meta.get("claimed_by")]
    digest = hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()
    return digest[:16]


@dataclass(frozen=True)
class LinkClaims:
    """What a valid token says."""

    link_id: str
    task_id: str
    user: str
    action: str
    version: str
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class ActionLinks:
    """Makes and reads action links for one public URL with one set of keys."""

    def __init__(
        self, keys: Sequence[bytes], public_url: str, ttl: timedelta = DEFAULT_TTL
    ) -> None:
        if not keys:
            raise LinkKeyError("action links need at least one key")
        if ttl <= timedelta(0):
            raise LinkKeyError("action links must live longer than 0 hours")
        # itsdangerous signs with the last key and verifies with every one
        self._serializer = URLSafeSerializer(list(reversed(keys)), salt=_SALT)
        self.public_url = public_url.rstrip("/")
        self.ttl = ttl

    def make_link(
        self,
        task: TaskRecord,
        user: str,
        action: str,
        now: datetime,
        link_id: str | None = None,
    ) -> str:
        """The URL that lets ``user`` take ``action`` on ``task`` once, until ``now + ttl``.

        ``link_id`` (default: random) names the link's single use; the notifier derives it
        from the delivery, so a delivery rendered again on a retry carries the same link.
        """
        payload = {
            "i": link_id or secrets.token_urlsafe(12),
            "t": task.id,
            "u": user,
            "a": action,
            "v": task_version(task),
            "e": int((now + self.ttl).timestamp()),
        }
        return f"{self.public_url}/a/{self._serializer.dumps(payload)}"

    def read(self, token: str) -> LinkClaims:
        """The claims of a token; BadLink if this server did not sign it as it is."""
        try:
            data: Any = self._serializer.loads(token)
            return LinkClaims(
                link_id=str(data["i"]),
                task_id=str(data["t"]),
                user=str(data["u"]),
                action=str(data["a"]),
                version=str(data["v"]),
                expires_at=datetime.fromtimestamp(int(data["e"]), UTC),
            )
        except (BadSignature, KeyError, TypeError, ValueError, OverflowError):
            raise BadLink("this link is not valid: it was changed or cut short") from None


def state_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "shenpi"


def link_keys(env: Mapping[str, str] | None = None) -> list[bytes]:
    """The keys from the environment (the first signs), or the generated one."""
    env = os.environ if env is None else env
    direct, path = env.get(SECRET_ENV), env.get(SECRET_FILE_ENV)
    if direct and path:
        raise LinkKeyError(f"set either {SECRET_ENV} or {SECRET_FILE_ENV}, not both")
    if direct:
        return [_checked(direct.strip(), SECRET_ENV)]
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = f"{SECRET_FILE_ENV}={path}: cannot read the key file: {exc}"
            raise LinkKeyError(reason) from None
        keys = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
        if not keys:
            raise LinkKeyError(f"{SECRET_FILE_ENV}={path}: the file holds no key ({_HOW})")
        return [_checked(k, f"{SECRET_FILE_ENV}={path}") for k in keys]
    return [generated_key(state_dir(env) / "link.key")]


def generated_key(path: Path) -> bytes:
    """The key in ``path``, made (owner-only) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it meanwhile: use theirs
            pass
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(secrets.token_hex(32) + "\n")
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise LinkKeyError(f"cannot read the generated link key {path}: {exc}") from None
    return _checked(key, str(path))


def _checked(key: str, source: str) -> bytes:
    raw = key.encode("utf-8")
    if len(raw) < MIN_SECRET_BYTES:
        raise LinkKeyError(
            f"{source}: the link key has {len(raw)} bytes; use at least {MIN_SECRET_BYTES} "
            f"random bytes ({_HOW})"
        )
    return raw


def link_ttl(env: Mapping[str, str] | None = None) -> timedelta:
    """``SHENPI_LINK_HOURS`` (a whole number of hours, 1 to 720), default 72."""
    env = os.environ if env is None else env
    raw = env.get(TTL_ENV)
    if not raw:
        return DEFAULT_TTL
    if not raw.strip().isdigit() or not 1 <= int(raw) <= 720:
        raise LinkKeyError(f"{TTL_ENV}={raw!r}: give a whole number of hours from 1 to 720")
    return timedelta(hours=int(raw))


def from_env(public_url: str | None, env: Mapping[str, str] | None = None) -> ActionLinks | None:
    """Action links for ``public_url`` (else ``SHENPI_PUBLIC_URL``); None without one:
    then notices carry no links and look as they always did."""
    env = os.environ if env is None else env
    url = public_url or env.get(PUBLIC_URL_ENV)
    if not url:
        return None
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        raise LinkKeyError(f"public URL {url!r} must be an http:// or https:// URL")
    return ActionLinks(link_keys(env), url, link_ttl(env))
