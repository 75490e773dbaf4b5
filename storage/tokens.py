"""The ``api_tokens`` table: who may call the HTTP API, as whom, with which scopes.

Only the SHA-256 of a token's secret is stored (service/tokens.py makes and checks
tokens); a row is never deleted, so ``tokens list`` still shows what a revoked token
was. Reads of one row by primary key are all a request costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from engine.errors import NotFound
from storage.rows import aware
from storage.tables import api_tokens

if TYPE_CHECKING:
    from storage.base import Database


@dataclass(frozen=True)
class TokenRow:
    """One stored token (without its secret, which is not stored)."""

    id: str
    user_id: str
    name: str | None
    scopes: tuple[str, ...]
    secret_hash: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def status(self, now: datetime) -> str:
        """active, expired or revoked: what ``tokens list`` shows and auth refuses."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


def _row(r: sa.RowMapping) -> TokenRow:
    return TokenRow(
        id=r["id"],
        user_id=r["user_id"],
        name=r["name"],
        scopes=tuple(r["scopes"]),
        secret_hash=r["secret_hash"],
        created_at=r["created_at"],
        created_by=r["created_by"],
        expires_at=r["expires_at"],
        revoked_at=r["revoked_at"],
        last_used_at=r["last_used_at"],
    )


class TokenTable:
    """The API tokens of one :class:`~storage.store.Store` (``store.tokens``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def insert(self, row: TokenRow) -> None:
        aware(row.created_at, "created_at")
        with self._db._write() as conn:
            conn.execute(
                sa.insert(api_tokens),
                {
                    "id": row.id,
                    "user_id": row.user_id,
                    "name": row.name,
                    "scopes": list(row.scopes),
                    "secret_hash": row.secret_hash,
                    "created_at": row.created_at,
                    "created_by": row.created_by,
                    "expires_at": row.expires_at,
                    "revoked_at": None,
                    "last_used_at": None,
                },
            )

    def get(self, token_id: str) -> TokenRow | None:
        with self._db._read() as conn:
            found = (
                conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id))
                .mappings()
                .first()
            )
        return _row(found) if found is not None else None

    def list(self, user_id: str | None = None) -> list[TokenRow]:
        """Every token (or one user's), oldest first."""
        stmt = sa.select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
        if user_id is not None:
            stmt = stmt.where(api_tokens.c.user_id == user_id)
        with self._db._read() as conn:
            return [_row(r) for r in conn.execute(stmt).mappings()]

    def revoke(self, token_id: str, now: datetime) -> TokenRow:
        """Mark a token revoked (from ``now``; a second revoke keeps the first time)."""
        aware(now, "now")
        with self._db._write() as conn:
            conn.execute(
                sa.update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            found = (
                conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id))
                .mappings()
                .first()
            )
        if found is None:
            raise NotFound("token", token_id, "list tokens with 'python run.py tokens list'")
        return _row(found)

    def touch(self, token_id: str, now: datetime) -> None:
        """Record when a token was last used (the caller limits how often)."""
        with self._db._write() as conn:
            conn.execute(
                sa.update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now)
            )
