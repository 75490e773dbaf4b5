"""API tokens: made, shown once, checked on every request (the HTTP face's "who is calling").

A token reads ``shp_<id>_<secret>``: the id finds the row by primary key, and only
SHA-256 of the secret is stored, compared with ``hmac.compare_digest`` so the time a
comparison takes says nothing about how much of a guess was right. A token acts as its
user: the same roles, stand-ins and four-eyes rules as ``--as USER`` on the CLI, limited
to its scopes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from engine.errors import InvalidData, NotAuthenticated
from engine.values import check_name
from storage.tokens import TokenRow

if TYPE_CHECKING:
    from service.workflow import Workflow

__all__ = [
    "SCOPES",
    "Caller",
    "Issued",
    "authenticate",
    "issue_token",
    "parse_expiry",
    "parse_scopes",
    "revoke_token",
    "token_rows",
]

PREFIX = "shp"
# read: look at tasks, instances, definitions; act: start and decide; admin: the operator
# views (every instance unmasked, the whole audit log, its verification)
SCOPES = ("read", "act", "admin")
DEFAULT_SCOPES = ("read", "act")
DEFAULT_EXPIRY = "90d"
_TOKEN = re.compile(r"shp_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_DURATION = re.compile(r"(\d{1,5})([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


@dataclass(frozen=True)
class Caller:
    """Who a request acts as, and what its token allows."""

    user: str
    scopes: frozenset[str]
    token_id: str

    def may(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class Issued:
    """A new token: ``secret`` is the only copy there will ever be."""

    token: str
    row: TokenRow


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse_scopes(text: str) -> tuple[str, ...]:
    """``read,act`` into known scopes, in a stable order; InvalidData for anything else."""
    named = {s.strip() for s in text.split(",") if s.strip()}
    unknown = sorted(named - set(SCOPES))
    if unknown or not named:
        raise InvalidData(
            "--scopes", f"expected a comma-separated list of {', '.join(SCOPES)}, not {text!r}"
        )
    return tuple(s for s in SCOPES if s in named)


def parse_expiry(text: str, now: datetime) -> datetime | None:
    """``30d``, ``12h``, ``45m``, an ISO 8601 instant, or ``never`` (None)."""
    if text == "never":
        return None
    match = _DURATION.fullmatch(text)
    if match:
        amount = int(match.group(1))
        if amount < 1:
            raise InvalidData("--expires", "the duration must be at least 1")
        return now + timedelta(**{_UNITS[match.group(2)]: amount})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidData(
            "--expires", f"expected 30d, 12h, 45m, an ISO 8601 time or never, not {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo)
    if moment <= now:
        raise InvalidData("--expires", f"{text} is not in the future")
    return moment


def issue_token(
    wf: Workflow,
    user: str,
    scopes: tuple[str, ...],
    expires_at: datetime | None,
    name: str | None,
    now: datetime,
    by: str = "system",
) -> Issued:
    """Make a token for ``user`` (who must be in the org) and store its hash."""
    check_name("user", user)
    if name is not None:
        check_name("--name", name)
    wf.org.user(user)  # an unknown user is refused, with the org's own message
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    row = TokenRow(
        id=token_id,
        user_id=user,
        name=name,
        scopes=scopes,
        secret_hash=_digest(secret),
        created_at=now,
        created_by=by,
        expires_at=expires_at,
        revoked_at=None,
        last_used_at=None,
    )
    wf.store.tokens.insert(row)
    return Issued(f"{PREFIX}_{token_id}_{secret}", row)


def token_rows(wf: Workflow, now: datetime, user: str | None = None) -> list[dict[str, object]]:
    """Every token (never a secret or hash), oldest first, with its status as of ``now``."""
    from service.display import iso

    return [
        {
            "id": r.id,
            "user": r.user_id,
            "name": r.name,
            "scopes": list(r.scopes),
            "status": r.status(now),
            "created_at": iso(r.created_at),
            "expires_at": iso(r.expires_at),
            "revoked_at": iso(r.revoked_at),
            "last_used_at": iso(r.last_used_at),
        }
        for r in wf.store.tokens.list(user)
    ]


def revoke_token(wf: Workflow, token_id: str, now: datetime) -> TokenRow:
    check_name("token id", token_id)
    return wf.store.tokens.revoke(token_id, now)


def authenticate(wf: Workflow, token: str, now: datetime) -> tuple[Caller, TokenRow]:
    """The caller a bearer token stands for; NotAuthenticated if it is not a live token.

    The reason is deliberately the same for an unknown id and a wrong secret, so the
    answer does not tell a guesser which half was right.
    """
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise NotAuthenticated("malformed token: expected shp_<id>_<secret>")
    token_id, secret = match.groups()
    row = wf.store.tokens.get(token_id)
    wanted = row.secret_hash if row is not None else _digest("")
    if not hmac.compare_digest(wanted, _digest(secret)) or row is None:
        raise NotAuthenticated("unknown token")
    status = row.status(now)
    if status != "active":
        raise NotAuthenticated(f"the token is {status}")
    return Caller(row.user_id, frozenset(row.scopes), row.id), row
