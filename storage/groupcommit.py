"""Group commit: steps that arrive together from many request threads share one commit.

A server with many approvers acting at once would otherwise pay one commit (an fsync on
SQLite, a WAL flush and a round trip on PostgreSQL) per step, one after the other: on
SQLite the writers queue on the single write lock anyway. Here the first thread to arrive
becomes the *leader*: it takes every step queued so far (its own included) and writes
them in one transaction, then commits once; the steps that arrive meanwhile wait and form
the next batch, written by one of their own threads. There is no writer thread to start
or stop and no timer: a batch is whatever queued while the last commit ran. (On
PostgreSQL a few leaders write side by side: see :class:`GroupCommitter`.)

Each step keeps its own result and its own error:

- the steps of a batch run through ``StepWriter.execute_batch`` (PostgreSQL pipeline,
  else a savepoint per step), so a step that lost its race (row version changed, the
  same task twice in one batch) gets its ``Conflict`` and writes nothing, while the
  others go ahead;
- a step that fails in any other way (a constraint, a trigger, a driver error) makes
  the batch's transaction roll back and the batch run again in a new one, one step per
  savepoint, so only the failing step gets the error;
- if the transaction itself fails, the COMMIT included, every caller of the batch gets
  that exception: nobody is told success for a step that is not durable;
- a caller returns only after the commit that holds its step has returned.

A failed COMMIT is never retried (whether it happened cannot be known for sure), and a
batch runs again only after its transaction was rolled back before any COMMIT, so
nothing is applied twice.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.records import Outcome
from storage.auditkeys import AuditKeys
from storage.db import normalize_url, open_database
from storage.steps import Plan, StepWriter
from storage.store import Store

# On PostgreSQL each step of a batch holds its audit chain's advisory lock and its row
# locks until the commit; this bounds how many, and how long one leader works.
MAX_BATCH = 64
# Batches written at once on PostgreSQL: enough to keep the server's cores and the round
# trips overlapping, few enough that steps still share commits under load and the
# request threads' reads keep connections of the pool (5 + 10 overflow) to themselves.
PG_WRITERS = 4

StepResult = list[int] | BaseException


def pays_off(url: str) -> bool:
    """Whether a server on ``url`` gains from group commit: on SQLite, yes.

    SQLite has one writer: without group commit concurrent request threads queue on its
    lock (sleeping in its busy handler, which makes the slowest wait long) and each pays
    an fsync. PostgreSQL runs transactions on different instances side by side and
    already shares one WAL flush between commits that arrive together; there, measured
    with 32 threads in one process (docs/benchmarks.md), funnelling the steps through a
    few leaders made fewer steps a second than a transaction per request thread.
    """
    return normalize_url(url).startswith("sqlite")


class _Waiter:
    """One caller's step and, once its batch is over, its result or its error."""

    __slots__ = ("done", "error", "plan", "result", "taken")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.taken = False  # in a leader's batch
        self.done = False  # that batch is over
        self.result: list[int] = []
        self.error: BaseException | None = None


class GroupCommitter:
    """Coalesces concurrent ``apply`` calls into shared transactions (leader/follower).

    At most ``writers`` batches are written at once, each by its own leader on its own
    connection. SQLite has one writer whatever we do, so one; PostgreSQL runs
    transactions on different rows side by side and already shares WAL flushes between
    concurrent commits, so there several leaders keep that parallelism, and steps queue
    (and share commits) only once every writer is busy.
    """

    def __init__(self, steps: StepWriter, max_batch: int = MAX_BATCH, writers: int = 1) -> None:
        if max_batch < 1 or writers < 1:
            raise ValueError(f"max_batch and writers must be at least 1: {max_batch}, {writers}")
        self._steps = steps
        self._max = max_batch
        self._writers = writers
        self._cond = threading.Condition()
        self._queue: deque[_Waiter] = deque()
        self._leaders = 0
        # counters for tests, benchmarks and operators (kept under the lock)
        self.batches_started = 0  # batches a leader has taken (under the lock)
        self.batches = 0  # batches committed
        self.steps = 0  # steps in them (lost races included: they were written as nothing)

    @property
    def queued(self) -> int:
        """Steps waiting for a leader to take them (tests wait on this, never on time)."""
        with self._cond:
            return len(self._queue)

    def apply(self, plan: Plan) -> list[int]:
        """Write ``plan`` in the next batch; its audit seqs once that batch is committed.

        Raises the step's own ``Conflict`` or error, or the batch's error if the
        transaction failed (then nothing of this step was written).
        """
        me = _Waiter(plan)
        with self._cond:
            self._queue.append(me)
        while True:
            with self._cond:
                while not me.done and (me.taken or self._leaders >= self._writers):
                    self._cond.wait()
                if me.done:
                    break
                # lead: the oldest steps first (mine among them unless max_batch are older)
                self._leaders += 1
                self.batches_started += 1
                batch = [self._queue.popleft() for _ in range(min(self._max, len(self._queue)))]
                for waiter in batch:
                    waiter.taken = True
            try:
                self._write(batch)
            finally:
                with self._cond:
                    for waiter in batch:
                        waiter.done = True
                    self._leaders -= 1
                    self._cond.notify_all()
        if me.error is not None:
            raise me.error
        return me.result

    def _write(self, batch: Sequence[_Waiter]) -> None:
        """Commit the batch; every waiter ends with a result or an error."""
        try:
            results = self._commit([w.plan for w in batch])
        except BaseException as exc:  # the transaction or its COMMIT failed: nothing is durable
            for waiter in batch:
                waiter.error = exc
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt and the like still stop the leader's thread
            return
        with self._cond:  # several leaders may finish at once on PostgreSQL
            self.batches += 1
            self.steps += len(batch)
        for waiter, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                waiter.error = result
            else:
                waiter.result = result

    def _commit(self, plans: Sequence[Plan]) -> list[StepResult]:
        """The plans in one committed transaction: together first, one by one if one fails.

        A step alone is written exactly as ``Store.apply`` writes it (its error is the
        batch's). Several go through ``execute_batch``; if that raises (not a lost race:
        those come back as Conflict), the transaction is rolled back whole and the plans
        run again in a new one, each in a savepoint, to find out whose step it is. The
        happy path so pays for no savepoint of its own.
        """
        steps = self._steps
        if len(plans) == 1:
            with steps.transaction(write=True) as cur:
                return [steps.execute(cur, plans[0])]
        failed = False
        try:
            with steps.transaction(write=True) as cur:
                try:
                    return list(steps.execute_batch(cur, plans))
                except Exception:
                    failed = True
                    raise
        except Exception:
            if not failed:
                raise  # the COMMIT itself: every caller's
        with steps.transaction(write=True) as cur:
            return self._one_by_one(cur, plans)

    def _one_by_one(self, cur: Any, plans: Sequence[Plan]) -> list[StepResult]:
        """Each plan in a savepoint of its own; an error undoes only that plan.

        In instance-id order, as ``execute_batch``, so that writers batching overlapping
        instances take the PostgreSQL row locks in one order. If the database cannot roll
        back to the savepoint (SQLite may abort the whole transaction on I/O errors), that
        error ends the batch and reaches every caller.
        """
        run = self._steps.run
        results: list[StepResult] = [[] for _ in plans]
        for i in sorted(range(len(plans)), key=lambda i: plans[i].instance_id):
            run(cur, "SAVEPOINT shenpi_one", {})
            try:
                results[i] = self._steps.execute(cur, plans[i])
            except Exception as exc:
                run(cur, "ROLLBACK TO SAVEPOINT shenpi_one", {})
                results[i] = exc
            run(cur, "RELEASE SAVEPOINT shenpi_one", {})
        return results


class GroupCommitStore(Store):
    """A Store whose ``apply`` goes through a :class:`GroupCommitter`: for a server whose
    request threads share one Store. Everything else is the plain Store's.

    ``GroupCommitStore.open(url)`` opens it as ``Store.open`` does. Steps that claim a
    schedule slot (the scheduler's) keep their own transaction.
    """

    def __init__(
        self,
        engine: sa.Engine,
        audit_keys: AuditKeys | None = None,
        max_batch: int = MAX_BATCH,
        writers: int | None = None,
    ) -> None:
        """``writers``: batches written at once (default 1 on SQLite, PG_WRITERS else)."""
        super().__init__(engine, audit_keys)
        if writers is None:
            writers = PG_WRITERS if self.dialect == "postgresql" else 1
        self.committer = GroupCommitter(self._steps, max_batch, writers)

    @classmethod
    def open(
        cls,
        url: str,
        audit_keys: AuditKeys | None = None,
        max_batch: int = MAX_BATCH,
        writers: int | None = None,
    ) -> GroupCommitStore:
        """Open the database at ``url`` as ``Store.open`` does, with group commit."""
        keys = audit_keys if audit_keys is not None else AuditKeys.from_env()
        return cls(open_database(url), keys, max_batch, writers)

    def apply(
        self,
        outcome: Outcome,
        recorded_at: datetime,
        fired_timer: str | None = None,
        schedule_run: tuple[str, datetime] | None = None,
    ) -> list[int]:
        """As ``Store.apply``, sharing the commit with the steps that arrive together.

        The plan (row parameters, audit hashes' documents) is made in the caller's
        thread before it queues, so the leader's transaction holds only statements.
        """
        if schedule_run is not None:
            return super().apply(outcome, recorded_at, fired_timer, schedule_run)
        return self.committer.apply(self._steps.plan(outcome, recorded_at, fired_timer))


__all__ = ["MAX_BATCH", "PG_WRITERS", "GroupCommitStore", "GroupCommitter", "pays_off"]
