"""Inbound webhook receipts: one row per (sender, ``webhook-id``), holding the first result.

Standard Webhooks senders retry a delivery with the same ``webhook-id`` (and a fresh
timestamp and signature) until they get a 2xx, for days. The receiver claims the id
before it acts (``pending``) and stores the answer when done, so every retry gets the
first answer back instead of acting again. A claim whose holder died (its lease ran out)
may be taken over: the action behind it is itself guarded (a decided task is not decided
again), so taking over cannot apply anything twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from storage.once import insert_once, locked
from storage.rows import aware
from storage.tables import webhook_receipts as receipts

if TYPE_CHECKING:
    from storage.store import Store

# Longer than any sender's retry schedule (Svix, the reference sender: about 3 days).
TTL = timedelta(days=7)
LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class Receipt:
    """``new`` (act, then ``complete``), ``replay`` (answer with status and body) or ``busy``
    (the same id is being handled right now)."""

    verdict: Literal["new", "replay", "busy"]
    received_at: datetime | None = None
    http_status: int | None = None
    body: Any = None


class WebhookReceipts:
    """The ``webhook_receipts`` table of one Store."""

    def __init__(self, store: Store, ttl: timedelta = TTL, lease: timedelta = LEASE) -> None:
        self._store = store
        self.ttl = ttl
        self.lease = lease
        self._insert = insert_once(store.dialect, receipts)

    def claim(self, sender: str, webhook_id: str, now: datetime) -> Receipt:
        now = aware(now, "now")
        where = (receipts.c.sender == sender, receipts.c.webhook_id == webhook_id)
        values = {"sender": sender, "webhook_id": webhook_id, "received_at": now}
        with self._store._write() as conn:
            if conn.execute(self._insert, values | {"status": "pending"}).rowcount == 1:
                return Receipt("new", received_at=now)
            stmt = locked(self._store.dialect, sa.select(receipts).where(*where))
            found = conn.execute(stmt).mappings().one()
            if found["status"] == "done":
                return Receipt("replay", found["received_at"], found["http_status"], found["body"])
            if found["received_at"] > now - self.lease:
                return Receipt("busy")
            conn.execute(sa.update(receipts).where(*where).values(received_at=now))
            return Receipt("new", received_at=now)

    def complete(
        self, sender: str, webhook_id: str, received_at: datetime, http_status: int, body: Any
    ) -> bool:
        """Keep the answer of the claim made at ``received_at``; False if it was lost."""
        stmt = (
            sa.update(receipts)
            .where(*self._held(sender, webhook_id, received_at))
            .values(status="done", http_status=http_status, body=body)
        )
        with self._store._write() as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def release(self, sender: str, webhook_id: str, received_at: datetime) -> None:
        """Forget a claim whose delivery was refused: the sender's retry is judged afresh."""
        with self._store._write() as conn:
            conn.execute(sa.delete(receipts).where(*self._held(sender, webhook_id, received_at)))

    def prune(self, now: datetime) -> int:
        cutoff = aware(now, "now") - self.ttl
        stmt = sa.delete(receipts).where(receipts.c.received_at <= cutoff)
        with self._store._write() as conn:
            return int(conn.execute(stmt).rowcount)

    def get(self, sender: str, webhook_id: str) -> dict[str, Any] | None:
        stmt = sa.select(receipts).where(
            receipts.c.sender == sender, receipts.c.webhook_id == webhook_id
        )
        with self._store._read() as conn:
            row = conn.execute(stmt).mappings().one_or_none()
        return None if row is None else dict(row)

    @staticmethod
    def _held(sender: str, webhook_id: str, received_at: datetime) -> tuple[Any, ...]:
        return (
            receipts.c.sender == sender,
            receipts.c.webhook_id == webhook_id,
            receipts.c.status == "pending",
            receipts.c.received_at == received_at,
        )
