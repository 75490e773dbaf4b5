"""The delivery queue: one row per (notice, recipient, channel), claimed, sent and marked.

(A group robot's row stands for all of a notice's recipients: its ``user_id`` is a marker,
see notifiers/outbox.py; this module does not care.)

A notice is expanded into deliveries in one transaction before anything is sent, so a
retry after a partial send reaches only the deliveries still pending. Every write that
follows a claim is guarded by the claim's timestamp: a worker whose lease ran out and
whose row another worker took over cannot mark that row any more.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect

from engine.errors import NotFound
from storage.rows import aware
from storage.tables import deliveries, outbox

if TYPE_CHECKING:
    from storage.store import Store

DELIVERY_STATUSES = ("pending", "sending", "sent", "dead")
OPEN = ("pending", "sending")
_NOTICE_COLUMNS = (
    outbox.c.event,
    outbox.c.recipients,
    outbox.c.instance_id,
    outbox.c.task_id,
    outbox.c.data,
    outbox.c.created_at.label("notice_created_at"),
)


class DeliveryQueue:
    """The ``deliveries`` table of one :class:`~storage.store.Store`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        insert = postgresql.insert if store.dialect == "postgresql" else sqlite_dialect.insert
        self._insert = (
            insert(deliveries)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .execution_options(preserve_rowcount=True)
        )

    def expand(
        self,
        notice_id: int,
        rows: Sequence[dict[str, Any]],
        now: datetime,
        reexpand: bool = False,
    ) -> int:
        """Queue ``rows`` for a notice and close the notice's claim, in one transaction.

        Rows whose dedupe key is already queued are skipped, so expanding again (another
        worker, or a recipient added since) never queues a second copy. Returns how many
        rows were new. ``reexpand`` (a notice expanded before) first reads what is queued,
        so checking an open notice for new recipients costs a read, not a write.
        """
        now = aware(now, "now")
        if reexpand:
            known = sa.select(deliveries.c.dedupe_key).where(deliveries.c.notice_id == notice_id)
            with self._store._read() as conn:
                queued = {r[0] for r in conn.execute(known)}
            rows = [r for r in rows if r["dedupe_key"] not in queued]
            if not rows:  # the usual case: no write transaction at all
                return 0
        added = 0
        with self._store._write() as conn:
            for row in rows:
                values = row | {
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "next_attempt_at": row.get("next_attempt_at") or now,
                }
                added += conn.execute(self._insert, values).rowcount
            conn.execute(
                sa.update(outbox)
                .where(outbox.c.id == notice_id, outbox.c.status.in_(("pending", "sending")))
                .values(status="sent", sent_at=now, attempts=outbox.c.attempts + 1)
            )
        return added

    def open_notices(self, limit: int = 100) -> list[dict[str, Any]]:
        """Expanded notices with deliveries still pending: recipients may have changed."""
        has_open = (
            sa.select(deliveries.c.id)
            .where(deliveries.c.notice_id == outbox.c.id, deliveries.c.status.in_(OPEN))
            .exists()
        )
        stmt = (
            sa.select(outbox)
            .where(outbox.c.status == "sent", has_open)
            .order_by(outbox.c.id)
            .limit(limit)
        )
        with self._store._read() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def claim(
        self, now: datetime, limit: int = 100, lease: timedelta = timedelta(minutes=5)
    ) -> list[dict[str, Any]]:
        """Take up to ``limit`` due deliveries; each attempt is counted when it is claimed.

        Counting at claim time means a worker that keeps dying mid-send still uses up the
        row's attempts instead of looping forever. PostgreSQL workers skip each other's
        rows (``FOR UPDATE SKIP LOCKED``); SQLite serialises claims.
        """
        now = aware(now, "now")
        due = sa.or_(
            sa.and_(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= now),
            sa.and_(deliveries.c.status == "sending", deliveries.c.claimed_at < now - lease),
        )
        pick = (
            sa.select(deliveries.c.id)
            .where(due)
            .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
            .limit(limit)
        )
        if self._store.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        with self._store._write() as conn:
            ids = [row[0] for row in conn.execute(pick)]
            if not ids:
                return []
            conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id.in_(ids))
                .values(status="sending", claimed_at=now, attempts=deliveries.c.attempts + 1)
            )
            stmt = (
                sa.select(deliveries, *_NOTICE_COLUMNS)
                .join(outbox, outbox.c.id == deliveries.c.notice_id)
                .where(deliveries.c.id.in_(ids))
                .order_by(deliveries.c.id)
            )
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def finish(
        self,
        row: dict[str, Any],
        status: str,
        now: datetime,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
        counted: bool = True,
    ) -> bool:
        """Record the attempt of a claimed row; False if the claim was lost meanwhile.

        ``pending`` with ``next_attempt_at`` puts the row back for later; ``counted=False``
        gives the attempt back (the row was held back, not tried).
        """
        if status not in DELIVERY_STATUSES:
            raise ValueError(f"delivery status must be one of {DELIVERY_STATUSES}, not {status!r}")
        now = aware(now, "now")
        values: dict[str, Any] = {"status": status, "claimed_at": None}
        if status == "sent":
            values["sent_at"] = now
        if error is not None or status != "pending":
            values["last_error"] = error
        if next_attempt_at is not None:
            values["next_attempt_at"] = aware(next_attempt_at, "next_attempt_at")
        if not counted:
            values["attempts"] = deliveries.c.attempts - 1
        stmt = (
            sa.update(deliveries)
            .where(
                deliveries.c.id == row["id"],
                deliveries.c.status == "sending",
                deliveries.c.claimed_at == row["claimed_at"],
            )
            .values(**values)
        )
        with self._store._write() as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def list(
        self, status: str | None = None, limit: int = 1000, notice_id: int | None = None
    ) -> list[dict[str, Any]]:
        stmt = (
            sa.select(deliveries, outbox.c.event, outbox.c.instance_id)
            .join(outbox, outbox.c.id == deliveries.c.notice_id)
            .order_by(deliveries.c.id)
            .limit(limit)
        )
        if status is not None:
            stmt = stmt.where(deliveries.c.status == status)
        if notice_id is not None:
            stmt = stmt.where(deliveries.c.notice_id == notice_id)
        with self._store._read() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def retry(self, ids: Collection[int], now: datetime) -> list[int]:
        """Put dead deliveries back with fresh attempts and a fresh age, all or none.

        NotFound (and nothing changed) if any id is not a dead delivery: retrying a row that
        is pending or sent could send it twice.
        """
        now = aware(now, "now")
        wanted = sorted(set(ids))
        found = sa.select(deliveries.c.id).where(
            deliveries.c.id.in_(wanted), deliveries.c.status == "dead"
        )
        with self._store._write() as conn:
            dead = sorted(row[0] for row in conn.execute(found))
            missing = [i for i in wanted if i not in dead]
            if missing:
                raise NotFound(
                    "dead delivery", missing[0], "see `notices --status dead` for retryable ids"
                )
            if dead:
                conn.execute(
                    sa.update(deliveries)
                    .where(deliveries.c.id.in_(dead))
                    .values(
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        claimed_at=None,
                        created_at=now,  # queued again: its age limit starts over
                    )
                )
        return dead
