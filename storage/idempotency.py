"""``Idempotency-Key`` rows: one per (caller, key), holding the response to replay.

A request claims its key before it runs (``pending``); when it completes with a 2xx its
status, headers and body are stored (``done``) and every retry with the same key and the
same payload gets them back. A request that ends in a refusal or an error releases its
key, so a corrected retry may run. A ``pending`` row whose holder died (its lease ran out)
may be taken over. Keys live ``TTL`` (24 h) from their first use and are pruned then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from storage.once import insert_once, locked
from storage.rows import aware
from storage.tables import idempotency_keys as keys

if TYPE_CHECKING:
    from storage.store import Store

TTL = timedelta(hours=24)
# How long a request may hold its key before a retry may take it over (the holder died).
LEASE = timedelta(minutes=2)

Verdict = Literal["new", "replay", "mismatch", "busy"]


@dataclass(frozen=True)
class Claim:
    """What a request may do with its key. ``claimed_at`` identifies a ``new`` claim."""

    verdict: Verdict
    claimed_at: datetime | None = None
    http_status: int | None = None
    headers: dict[str, str] | None = None
    body: bytes | None = None


class IdempotencyKeys:
    """The ``idempotency_keys`` table of one Store."""

    def __init__(self, store: Store, ttl: timedelta = TTL, lease: timedelta = LEASE) -> None:
        self._store = store
        self.ttl = ttl
        self.lease = lease
        self._insert = insert_once(store.dialect, keys)

    def claim(self, scope: str, key: str, fingerprint: str, now: datetime) -> Claim:
        """Claim ``key`` for a request with ``fingerprint`` (a hash of method, path, body)."""
        now = aware(now, "now")
        where = (keys.c.scope == scope, keys.c.key == key)
        values = {
            "scope": scope,
            "key": key,
            "fingerprint": fingerprint,
            "status": "pending",
            "created_at": now,
            "claimed_at": now,
        }
        with self._store._write() as conn:
            if conn.execute(self._insert, values).rowcount == 1:
                return Claim("new", claimed_at=now)
            row = conn.execute(locked(self._store.dialect, sa.select(keys).where(*where)))
            found = row.mappings().one()
            if found["created_at"] <= now - self.ttl:  # expired, not pruned yet: a new key
                conn.execute(sa.update(keys).where(*where).values(**values, http_status=None))
                return Claim("new", claimed_at=now)
            if found["fingerprint"] != fingerprint:
                return Claim("mismatch")
            if found["status"] == "done":
                return Claim(
                    "replay",
                    http_status=found["http_status"],
                    headers=dict(found["headers"] or {}),
                    body=bytes(found["body"] or b""),
                )
            if found["claimed_at"] > now - self.lease:
                return Claim("busy")
            conn.execute(sa.update(keys).where(*where).values(claimed_at=now))
            return Claim("new", claimed_at=now)

    def complete(
        self,
        scope: str,
        key: str,
        claimed_at: datetime,
        http_status: int,
        headers: dict[str, str],
        body: bytes,
    ) -> bool:
        """Store the response of the claim made at ``claimed_at``; False if it was lost."""
        stmt = (
            sa.update(keys)
            .where(*self._held(scope, key, claimed_at))
            .values(status="done", http_status=http_status, headers=headers, body=body)
        )
        with self._store._write() as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def release(self, scope: str, key: str, claimed_at: datetime) -> None:
        """Forget a claim whose request did not complete: a retry runs afresh."""
        with self._store._write() as conn:
            conn.execute(sa.delete(keys).where(*self._held(scope, key, claimed_at)))

    def prune(self, now: datetime) -> int:
        """Delete keys older than the TTL; returns how many."""
        cutoff = aware(now, "now") - self.ttl
        with self._store._write() as conn:
            return int(conn.execute(sa.delete(keys).where(keys.c.created_at <= cutoff)).rowcount)

    def get(self, scope: str, key: str) -> dict[str, Any] | None:
        stmt = sa.select(keys).where(keys.c.scope == scope, keys.c.key == key)
        with self._store._read() as conn:
            row = conn.execute(stmt).mappings().one_or_none()
        return None if row is None else dict(row)

    @staticmethod
    def _held(scope: str, key: str, claimed_at: datetime) -> tuple[Any, ...]:
        return (
            keys.c.scope == scope,
            keys.c.key == key,
            keys.c.status == "pending",
            keys.c.claimed_at == claimed_at,
        )
