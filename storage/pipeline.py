"""A PostgreSQL batch of steps in a dozen statements instead of about ten per step.

On a busy server every round trip costs about a millisecond, so a tick's backlog run
statement by statement fired under a hundred timers a second. Here each kind of
statement runs once for all plans of a batch (``executemany``, which psycopg pipelines).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.errors import Conflict
from storage.audithash import GENESIS, lock_key

if TYPE_CHECKING:
    from storage.steps import Plan, StepWriter

ADVISORY_LOCKS = "SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(%(keys)s AS bigint[])) AS k"
CHAIN_HEADS = (
    "SELECT chain_key, last_hash, entries FROM audit_chains "
    "WHERE chain_key = ANY(CAST(%(keys)s AS text[]))"
)


def run(w: StepWriter, cur: Any, plans: Sequence[Plan]) -> list[list[int] | Conflict] | None:
    """All plans of a batch, each kind of statement once for all of them.

    First the guarded instance writes in instance-id order (row locks, as in
    ``StepWriter.execute``), the timer claims, then the audit chain locks of the
    instances whose rows are now held, and their chain tips; then every remaining
    statement of the plans that won. A plan whose instance write and timer claim both
    found nothing lost its race and wrote nothing; one where only one of them did (a
    timer cancelled without touching its instance) cannot be undone here, so None tells
    the caller to roll back to before the batch and run it plan by plan; so does a batch
    with register writes.
    """
    if any(p.register_writes for p in plans):
        return None  # register writes are checked row by row (storage.registers): one by one
    order = sorted(range(len(plans)), key=lambda i: plans[i].instance_id)
    results: list[list[int] | Conflict] = [[] for _ in plans]
    try:
        wrote: dict[int, bool] = {}
        for insert, sql in (
            (True, f"{w.INSERT_INSTANCE} RETURNING id"),
            (False, f"{w.UPDATE_INSTANCE} RETURNING id"),
        ):
            idxs = [i for i in order if plans[i].insert is insert]
            found = _each(cur, sql, [plans[i].instance for i in idxs])
            wrote.update(zip(idxs, found, strict=True))
        timed = [i for i in order if plans[i].fired is not None]
        claims = [plans[i].fired or {} for i in timed]
        fired = dict(zip(timed, _each(cur, f"{w.FIRE_TIMER} RETURNING id", claims), strict=True))
        won: list[int] = []
        for i in order:
            if i in fired and fired[i] != wrote[i]:
                return None
            if wrote[i]:
                won.append(i)
            else:
                results[i] = Conflict(
                    plans[i].instance_id,
                    "an instance with this id already exists" if plans[i].insert else "",
                )
        keys = sorted({doc["chain_key"] for i in won for _, doc in plans[i].audit})
        tips: dict[str, tuple[str, int, int]] = {}
        if keys:
            locks = sorted({lock_key(k) for k in keys})
            cur.execute(ADVISORY_LOCKS, {"keys": locks})
            cur.execute(CHAIN_HEADS, {"keys": keys})
            found = {key: (last, entries) for key, last, entries in cur.fetchall()}
            tips = {key: (*found.get(key, (GENESIS, 0)), 0) for key in keys}
        audit: list[dict[str, Any]] = []
        owners: list[int] = []
        for i in won:
            linked = w.link(plans[i].audit, tips)
            audit.extend(linked)
            owners.extend([i] * len(linked))
        seqs: dict[int, list[int]] = {i: [] for i in won}
        for statement, rows in _stage_two(w, plans, won):
            if statement == w.INSERT_AUDIT:
                returned = _each(cur, w.INSERT_AUDIT, audit, value=True)
                for i, row, seq in zip(owners, audit, returned, strict=True):
                    seqs[i].append(seq)
                    last, entries, _ = tips[row["chain_key"]]
                    tips[row["chain_key"]] = (last, entries, seq)
                if tips:
                    cur.executemany(w.UPSERT_CHAIN, w.anchors(tips))
            elif rows:
                cur.executemany(statement, rows)
        for i, mine in seqs.items():
            results[i] = mine
    except w.dbapi_error as exc:
        raise sa.exc.DBAPIError.instance("batch", {}, exc, w.dbapi_error) from exc
    return results


def _each(cur: Any, sql: str, rows: Sequence[Mapping[str, Any]], value: bool = False) -> list[Any]:
    """``executemany`` of a RETURNING statement: per row, whether it returned a row
    (or, with ``value``, the first column it returned)."""
    if not rows:
        return []
    cur.executemany(sql, rows, returning=True)
    out = []
    while True:
        row = cur.fetchone()
        out.append(row[0] if value else row is not None)
        if not cur.nextset():
            return out


def _stage_two(
    w: StepWriter, plans: Sequence[Plan], won: Sequence[int]
) -> list[tuple[str, list[dict[str, Any]]]]:
    """The statements after the claim, in ``execute``'s order, rows of all winners
    (audit rows are chained and sent by the caller)."""

    def rows(attr: str) -> list[dict[str, Any]]:
        return [row for i in won for row in getattr(plans[i], attr)]

    return [
        (w.INSERT_TASK, rows("opened")),
        (w.UPDATE_TASK, rows("changed")),
        (w.DELETE_TASK_ROLES, rows("roles_cleared")),
        (w.INSERT_TASK_ROLE, rows("roles")),
        (w.INSERT_AUDIT, []),
        (w.CANCEL_STATE, rows("cancel_states")),
        (w.INSERT_TIMER, rows("timers")),
        (w.INSERT_OUTBOX, rows("notices")),
    ]
