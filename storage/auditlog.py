"""The audit log of a Store: appending entries that belong to no step, reading and
checking it (the chain itself: storage.audithash and storage.auditchain)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict, Unpack

import sqlalchemy as sa

from engine.records import AuditRecord
from storage import paging
from storage.auditchain import AuditCheck, AuditHead, ChainChecker
from storage.audithash import head_digest
from storage.base import Database, check_limit
from storage.paging import Page
from storage.rows import aware
from storage.tables import audit_chains, audit_log, instances

AUDIT_KEYS = (
    "seq",
    "at",
    "recorded_at",
    "actor",
    "on_behalf_of",
    "instance_id",
    "process",
    "task_id",
    "action",
    "from_state",
    "to_state",
    "data",
    "hash",
)
_MAX_BATCH = 1000  # entries per page when reading a whole history


class AuditFilter(TypedDict, total=False):
    """The filters of :meth:`AuditLog.audit_page`."""

    instance_id: str | None
    actor: str | None
    action: str | None
    process: str | None
    since: datetime | None
    until: datetime | None


class AuditLog(Database):
    """The audit queries of :class:`~storage.store.Store`."""

    def append_audit(self, records: Sequence[AuditRecord], recorded_at: datetime) -> list[int]:
        """Audit entries that belong to no step (deploys, refused actions), committed alone."""
        aware(recorded_at, "recorded_at")
        if not records:
            return []
        rows = self._steps.audit_rows(records, recorded_at)
        with self._steps.transaction(write=True) as cur:
            return self._steps.append_audit(cur, rows)

    def query_audit(
        self, *, limit: int | None = None, **filters: Unpack[AuditFilter]
    ) -> list[dict[str, Any]]:
        """Every matching entry (or the first ``limit``), read page by page through
        :meth:`audit_page`: an instance's history in ``show`` must never be cut short."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        while limit is None or len(found) < limit:
            want = _MAX_BATCH if limit is None else min(_MAX_BATCH, limit - len(found))
            page = self.audit_page(**filters, limit=want, after=after)
            found.extend(page.items)
            if page.next is None:
                break
            after = page.next
        return found

    def audit_page(
        self, *, limit: int = 100, after: str | None = None, **filters: Unpack[AuditFilter]
    ) -> Page[dict[str, Any]]:
        """Entries in seq order after the cursor; ``since``/``until`` bound the effective
        time, both inclusive.

        ``actor`` matches the actor or the person acted for. An OR of two columns would
        defeat both indexes, so it is two index range scans, (actor, seq) and
        (on_behalf_of, seq), each stopping after a page, merged here.
        """
        check_limit(limit)
        (last,) = paging.decode("audit", after) if after is not None else (None,)
        instance_id, actor = filters.get("instance_id"), filters.get("actor")
        action, process = filters.get("action"), filters.get("process")
        since, until = filters.get("since"), filters.get("until")
        stmt = sa.select(*(audit_log.c[k] for k in AUDIT_KEYS))
        if instance_id is not None:
            # an instance's entries are its chain: (chain_key, seq) lists them in order
            stmt = stmt.where(
                audit_log.c.chain_key == instance_id, audit_log.c.instance_id == instance_id
            )
        if action is not None:
            stmt = stmt.where(audit_log.c.action == action)
        if process is not None:
            stmt = stmt.where(audit_log.c.process == process)
        if since is not None:
            stmt = stmt.where(audit_log.c.at >= since)
        if until is not None:
            stmt = stmt.where(audit_log.c.at <= until)
        if last is not None:
            stmt = stmt.where(audit_log.c.seq > last)
        if actor is None:
            scans = [stmt]
        else:
            scans = [
                stmt.where(audit_log.c.actor == actor),
                stmt.where(audit_log.c.on_behalf_of == actor),
            ]
        found: dict[int, dict[str, Any]] = {}
        with self._read() as conn:
            for scan in scans:
                for r in conn.execute(scan.order_by(audit_log.c.seq).limit(limit + 1)).mappings():
                    found[r["seq"]] = dict(r)
        rows = [found[seq] for seq in sorted(found)][: limit + 1]
        page = rows[:limit]
        more = len(rows) > limit
        return Page(page, paging.encode("audit", page[-1]["seq"]) if more else None)

    def check_audit(self, head: AuditHead | None = None, require_key: bool = False) -> AuditCheck:
        """Recompute every chain and compare it with its anchor (and ``head``, if kept).

        One snapshot for the whole check (REPEATABLE READ on PostgreSQL), so entries
        appended meanwhile cannot look like a mismatch between log and anchors. What is
        and is not detected: storage.auditchain and the README.
        """
        checker = ChainChecker(self.audit_keys, head, require_key)
        log = sa.select(audit_log).order_by(audit_log.c.seq)
        with self._snapshot() as conn:
            for row in conn.execution_options(yield_per=2000).execute(log).mappings():
                checker.entry(row)
            checker.anchors(conn.execute(sa.select(audit_chains)).mappings())
            ids = conn.execution_options(yield_per=5000).execute(sa.select(instances.c.id))
            checker.instances(r[0] for r in ids)
        return checker.finish()

    def audit_head(self) -> tuple[AuditHead, int]:
        """The head of the log now (and how many of its entries are unkeyed).

        On PostgreSQL entries can commit out of seq order, so a plain read could see seq
        101 while 100 is still to commit, and a later check would count 100 in. A SHARE
        lock waits for every open append and holds new ones (a few ms) while reading.
        """
        last = sa.func.max(audit_log.c.seq).label("last")
        per_chain = (
            sa.select(audit_log.c.chain_key, last, sa.func.count().label("n"))
            .group_by(audit_log.c.chain_key)
            .subquery()
        )
        heads = sa.select(
            audit_log.c.chain_key, audit_log.c.seq, audit_log.c.hash, per_chain.c.n
        ).join(per_chain, audit_log.c.seq == per_chain.c.last)
        unkeyed = sa.select(sa.func.count()).where(audit_log.c.key_id.is_(None))
        with self._read() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql("LOCK TABLE audit_log IN SHARE MODE")
            rows = conn.execute(heads).all()
            plain = conn.execute(unkeyed).scalar_one()
        tips = {key: (seq, digest) for key, seq, digest, _ in rows}
        head = AuditHead(
            seq=max((seq for seq, _ in tips.values()), default=0),
            entries=sum(n for *_, n in rows),
            chains=len(tips),
            digest=head_digest(tips),
        )
        return head, plain
