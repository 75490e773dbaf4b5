"""Group commit against real SQLite and PostgreSQL: many request threads, one commit each
batch, every caller with its own result or its own error.

Which steps end up in one batch depends on thread timing. Where a test needs a known
batch it holds the database's write lock from another connection, lets one step start
writing (and wait on that lock), queues the others behind it and only then lets go: the
queued steps are then one batch. Nothing here asserts a duration.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.errors import Conflict, ShenpiError, TaskClosed
from engine.records import Snapshot
from service.workflow import Workflow
from storage.db import open_engine
from storage.groupcommit import GroupCommitStore, pays_off

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
NOW = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)
START = {"kind": "complaint", "customer": "c", "contact": "1", "content": "x"}
ACCEPT = {"first_contact": "called"}
CLIENTS = 32


@pytest.fixture
def wf(db_url: str) -> Iterator[Workflow]:
    """One Workflow on a group-commit store, shared by every thread (as the server does);
    on PostgreSQL with several writers, as the server has."""
    flow = Workflow(GroupCommitStore.open(db_url), PROCESSES)
    flow.deploy(now=NOW)
    try:
        yield flow
    finally:
        flow.store.close()


@pytest.fixture
def wf1(db_url: str) -> Iterator[Workflow]:
    """As ``wf`` with one writer, so that the steps queued behind it are one batch."""
    flow = Workflow(GroupCommitStore.open(db_url, writers=1), PROCESSES)
    flow.deploy(now=NOW)
    try:
        yield flow
    finally:
        flow.store.close()


def open_tasks(wf: Workflow, n: int) -> list[str]:
    return [wf.start("complaint", "wang.fang", START, now=NOW).tasks[0].id for _ in range(n)]


def accept(wf: Workflow, task_id: str) -> Snapshot:
    return wf.act(task_id, "accept", "zhao.lei", ACCEPT, now=NOW)


def in_threads(calls: list[Callable[[], Any]], barrier: bool = True) -> list[Any]:
    """Run each call in a thread of its own (released together); each one's return value
    or the exception it raised, in order."""
    results: list[Any] = [None] * len(calls)
    gate = threading.Barrier(len(calls)) if barrier else None

    def body(i: int) -> None:
        if gate is not None:
            gate.wait(timeout=60)
        try:
            results[i] = calls[i]()
        except Exception as exc:  # the caller's own error is its result here
            results[i] = exc

    threads = [threading.Thread(target=body, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a caller never returned"
    return results


def accepts(wf: Workflow, task_id: str) -> list[dict[str, Any]]:
    instance = wf.store.get_task(task_id).instance_id
    return wf.store.query_audit(instance_id=instance, action="accept")


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a state the test set up (never a timing assertion: the bound is generous)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)


@contextmanager
def write_lock(url: str) -> Iterator[None]:
    """Hold the database's write path from another connection until the block ends."""
    engine = open_engine(url)
    try:
        with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE takes the write lock
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("LOCK TABLE instances IN EXCLUSIVE MODE")  # reads go on
            yield
    finally:
        engine.dispose()


def one_batch(
    wf: Workflow,
    url: str,
    first: Callable[[], Any],
    rest: list[Callable[[], Any]],
    batches: int = 2,
) -> tuple[Any, list[Any]]:
    """``first`` alone in a batch held on the write lock, then ``rest`` queued behind it
    as one batch (or as few as ``max_batch`` allows: ``batches`` in all)."""
    committer = wf.store.committer  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    base = committer.batches_started
    with write_lock(url):
        leader = threading.Thread(target=lambda: out.update(first=in_threads([first])[0]))
        leader.start()
        leading = base + 1  # the leader took its step and waits for the lock
        until(lambda: (committer.batches_started, committer.queued) == (leading, 0), "leading")
        followers = threading.Thread(
            target=lambda: out.update(rest=in_threads(rest, barrier=False))
        )
        followers.start()
        until(lambda: committer.queued == len(rest), "every other step queued")
    leader.join(timeout=120)
    followers.join(timeout=120)
    assert committer.batches_started - base == batches, "the queued steps were not batched together"
    return out["first"], out["rest"]


def add_trigger(url: str, instance_id: str, *, at_commit: bool) -> None:
    """Make the database refuse the audit entry of ``instance_id``'s next step: at once
    (a failing statement), or only at COMMIT (a deferred foreign key that cannot hold)."""
    engine = open_engine(url)
    try:
        with engine.begin() as conn:
            sql = conn.exec_driver_sql
            if conn.dialect.name == "sqlite":
                if at_commit:
                    sql("CREATE TABLE poison_parent (id TEXT PRIMARY KEY)")
                    sql(
                        "CREATE TABLE poison_sink (ref TEXT REFERENCES poison_parent(id) "
                        "DEFERRABLE INITIALLY DEFERRED)"
                    )
                    body = "INSERT INTO poison_sink VALUES ('nothing');"
                else:
                    body = "SELECT RAISE(ABORT, 'poisoned step');"
                sql(
                    f"CREATE TRIGGER poison AFTER INSERT ON audit_log "
                    f"WHEN NEW.instance_id = '{instance_id}' BEGIN {body} END"
                )
            else:
                if at_commit:
                    sql("CREATE TABLE poison_parent (id TEXT PRIMARY KEY)")
                    sql(
                        "CREATE TABLE poison_sink (ref TEXT REFERENCES poison_parent(id) "
                        "DEFERRABLE INITIALLY DEFERRED)"
                    )
                    body = "INSERT INTO poison_sink VALUES ('nothing');"
                else:
                    body = "RAISE EXCEPTION 'poisoned step';"
                sql(
                    "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"{body} RETURN NEW; END $$"
                )
                sql(
                    "CREATE TRIGGER poison AFTER INSERT ON audit_log FOR EACH ROW "
                    f"WHEN (NEW.instance_id = '{instance_id}') EXECUTE FUNCTION poison()"
                )
    finally:
        engine.dispose()


def drop_trigger(url: str) -> None:
    engine = open_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "DROP TRIGGER poison" + ("" if conn.dialect.name == "sqlite" else " ON audit_log")
            )
    finally:
        engine.dispose()


# ---------------------------------------------------------------------- tests


def test_distinct_tasks_each_applied_once_with_its_own_result(wf: Workflow) -> None:
    tasks = open_tasks(wf, CLIENTS)
    results = in_threads([lambda t=t: accept(wf, t) for t in tasks])

    for task_id, result in zip(tasks, results, strict=True):
        assert isinstance(result, Snapshot), result
        stored = wf.store.load_snapshot(result.id)
        assert stored.id == wf.store.get_task(task_id).instance_id  # its own instance
        assert (result.state, result.row_version) == (stored.state, stored.row_version)
        assert stored.state != "accepting"
        assert wf.store.get_task(task_id).status != "open"
        assert len(accepts(wf, task_id)) == 1
    committer = wf.store.committer  # type: ignore[attr-defined]
    assert committer.steps == CLIENTS + CLIENTS  # the starts and the accepts, once each
    assert wf.store.check_audit().problems == []


def test_same_task_from_every_thread_one_wins(wf: Workflow) -> None:
    (task_id,) = open_tasks(wf, 1)
    instance = wf.store.get_task(task_id).instance_id
    before = wf.store.load_snapshot(instance).row_version

    results = in_threads([lambda: accept(wf, task_id)] * CLIENTS)

    won = [r for r in results if isinstance(r, Snapshot)]
    lost = [r for r in results if not isinstance(r, Snapshot)]
    assert len(won) == 1 and len(lost) == CLIENTS - 1, results
    for exc in lost:
        assert isinstance(exc, ShenpiError), exc
        assert "changed by someone else" in str(exc) or "already" in str(exc), exc
    assert wf.store.load_snapshot(instance).row_version == before + 1
    assert len(accepts(wf, task_id)) == 1
    assert wf.store.check_audit().problems == []


def test_same_task_twice_in_one_batch(wf1: Workflow, db_url: str) -> None:
    """The losers are in the very batch the winner is in: they get their Conflict there
    (which the Workflow words as the task being done, and by whom)."""
    wf = wf1
    first, (task_id,) = open_tasks(wf, 1), open_tasks(wf, 1)
    lead, rest = one_batch(
        wf, db_url, lambda: accept(wf, first[0]), [lambda: accept(wf, task_id)] * 8
    )
    assert isinstance(lead, Snapshot)
    assert sum(isinstance(r, Snapshot) for r in rest) == 1, rest
    lost = [r for r in rest if not isinstance(r, Snapshot)]
    assert len(lost) == 7 and all(isinstance(r, Conflict | TaskClosed) for r in lost), rest
    assert all("zhao.lei" in str(r) for r in lost if isinstance(r, TaskClosed)), lost
    assert len(accepts(wf, task_id)) == 1
    assert wf.store.check_audit().problems == []


def test_a_failing_step_does_not_lose_the_others(wf1: Workflow, db_url: str) -> None:
    wf = wf1
    first, *tasks = open_tasks(wf, 6)
    poison = wf.store.get_task(tasks[2]).instance_id
    poison_version = wf.store.load_snapshot(poison).row_version
    add_trigger(db_url, poison, at_commit=False)

    lead, rest = one_batch(
        wf, db_url, lambda: accept(wf, first), [lambda t=t: accept(wf, t) for t in tasks]
    )

    assert isinstance(lead, Snapshot)
    for task_id, result in zip(tasks, rest, strict=True):
        if task_id == tasks[2]:
            assert isinstance(result, sa.exc.DBAPIError), result
            assert "poisoned step" in str(result)
            assert wf.store.get_task(task_id).status == "open"
            assert wf.store.load_snapshot(poison).row_version == poison_version
            assert accepts(wf, task_id) == []
        else:
            assert isinstance(result, Snapshot), result
            assert len(accepts(wf, task_id)) == 1
    assert wf.store.check_audit().problems == []


def test_a_failed_commit_fails_every_caller_of_the_batch(wf1: Workflow, db_url: str) -> None:
    wf = wf1
    first, *tasks = open_tasks(wf, 5)
    instances = {t: wf.store.get_task(t).instance_id for t in tasks}
    versions = {t: wf.store.load_snapshot(i).row_version for t, i in instances.items()}
    add_trigger(db_url, instances[tasks[0]], at_commit=True)

    lead, rest = one_batch(
        wf, db_url, lambda: accept(wf, first), [lambda t=t: accept(wf, t) for t in tasks]
    )

    assert isinstance(lead, Snapshot)
    for task_id, result in zip(tasks, rest, strict=True):
        assert isinstance(result, Exception) and not isinstance(result, ShenpiError), result
        assert "foreign key" in str(result).lower(), result
        assert wf.store.get_task(task_id).status == "open"
        assert wf.store.load_snapshot(instances[task_id]).row_version == versions[task_id]
        assert accepts(wf, task_id) == []
    assert wf.store.check_audit().problems == []

    # nothing was half done: once the database accepts it again each step applies once
    drop_trigger(db_url)
    again = in_threads([lambda t=t: accept(wf, t) for t in tasks])
    assert all(isinstance(r, Snapshot) for r in again), again
    assert all(len(accepts(wf, t)) == 1 for t in tasks)
    assert wf.store.check_audit().problems == []


def test_max_batch_bounds_a_batch(db_url: str) -> None:
    flow = Workflow(GroupCommitStore.open(db_url, max_batch=3, writers=1), PROCESSES)
    try:
        flow.deploy(now=NOW)
        first, *tasks = open_tasks(flow, 8)
        calls = [lambda t=t: accept(flow, t) for t in tasks]
        # 7 queued steps in batches of at most 3: 3 + 3 + 1
        lead, rest = one_batch(flow, db_url, lambda: accept(flow, first), calls, batches=1 + 3)
        assert isinstance(lead, Snapshot)
        assert all(isinstance(r, Snapshot) for r in rest), rest
        assert all(len(accepts(flow, t)) == 1 for t in tasks)
    finally:
        flow.store.close()


def test_serve_groups_commits_on_sqlite_only(tmp_path: Path) -> None:
    """Where measured to pay (docs/benchmarks.md): SQLite's single writer, not PostgreSQL."""
    assert pays_off(f"sqlite:///{tmp_path / 'x.db'}")
    assert pays_off(str(tmp_path / "x.db"))  # a bare path is a SQLite file
    assert not pays_off("postgresql://u@127.0.0.1/db")
    assert not pays_off("postgresql+psycopg://u@127.0.0.1/db")


def test_workflow_open_picks_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    grouped = Workflow.open(url, PROCESSES, create=True, group_commit=True)
    plain = Workflow.open(url, PROCESSES)  # what every CLI command opens
    try:
        assert isinstance(grouped.store, GroupCommitStore)
        assert not isinstance(plain.store, GroupCommitStore)
    finally:
        grouped.store.close()
        plain.store.close()
