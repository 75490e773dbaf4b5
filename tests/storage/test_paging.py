"""Keyset paging of the list queries, on SQLite and PostgreSQL: every row once, in order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from engine.errors import InvalidData
from engine.records import Snapshot, TaskRecord
from storage import paging
from storage.db import alembic_config, open_engine
from storage.paging import Page
from storage.store import Store
from tests.sqlplans import captured, plans

from .test_store import T0, audit, snapshot, start, task


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()


def walk(fetch: Callable[..., Page[Any]], **kw: Any) -> list[Any]:
    """Every row of a listing, page by page, following the cursors to the end."""
    rows: list[Any] = []
    after: str | None = None
    for _ in range(1000):
        page = fetch(after=after, **kw)
        rows.extend(page.items)
        if page.next is None:
            return rows
        after = page.next
    raise AssertionError("the cursors never ended")


def due_order(t: TaskRecord) -> tuple[bool, datetime, str]:
    return (t.due_at is None, t.due_at or T0, t.id)


def fill_tasks(store: Store) -> list[TaskRecord]:
    """Open tasks with equal, distinct and missing due times, one pending for two roles."""
    made: list[TaskRecord] = []
    dues = [3, 1, None, 1, 2, None, 1, 5, 0]
    for i, days in enumerate(dues):
        iid = f"p{i % 4}x{i}"
        due = T0 + timedelta(days=days) if days is not None else None
        roles = ("manager", "clerk") if i % 3 == 0 else (("clerk",) if i % 3 == 1 else ("cfo",))
        t = task(iid, 1, due_at=due, roles=roles, mode="all" if len(roles) > 1 else "any")
        t2 = task(iid, 2, due_at=due, roles=("manager",), process="travel")
        store.apply(start(iid, tasks=(t, t2)), T0)
        made += [t, t2]
    return made


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_task_pages_hold_every_task_once_in_order(store: Store, limit: int) -> None:
    made = fill_tasks(store)
    later = T0 + timedelta(days=2, hours=1)
    cases: list[tuple[dict[str, Any], list[TaskRecord]]] = [
        ({}, made),
        ({"roles": {"manager", "clerk"}}, [t for t in made if {"manager", "clerk"} & {*t.roles}]),
        ({"roles": {"cfo"}, "overdue_at": later}, [t for t in made if "cfo" in t.roles]),
        ({"overdue_at": later}, made),
        ({"process": "travel"}, [t for t in made if t.process == "travel"]),
        ({"roles": {"manager"}, "process": "leave"}, [t for t in made if t.roles[0] == "manager"]),
    ]
    for kw, wanted in cases:
        if "overdue_at" in kw:
            wanted = [t for t in wanted if t.due_at is not None and t.due_at < kw["overdue_at"]]
        if kw.get("process") == "leave":
            wanted = [t for t in wanted if t.process == "leave"]
        got = walk(store.task_page, limit=limit, **kw)
        assert [t.id for t in got] == [t.id for t in sorted(wanted, key=due_order)], kw


def test_keep_filter_reads_on_until_the_page_is_full(store: Store) -> None:
    """The four-eyes case: most early candidates are dropped, later ones must still come."""
    made = [task(f"k{i:04d}", 1, due_at=T0 + timedelta(minutes=i)) for i in range(260)]
    outcomes = [(start(t.instance_id, tasks=(t,)), None) for t in made]
    store.apply_batch(outcomes, T0)

    def keep(t: TaskRecord, owner: Snapshot) -> bool:
        assert owner.id == t.instance_id
        return int(t.instance_id[1:]) >= 250

    first = store.task_page(roles={"manager"}, limit=3, keep=keep)
    assert [t.instance_id for t in first.items] == ["k0250", "k0251", "k0252"]
    rest = walk(store.task_page, roles={"manager"}, limit=3, keep=keep)
    assert [t.instance_id for t in rest] == [f"k{i:04d}" for i in range(250, 260)]


def test_instance_pages_hold_every_instance_once(store: Store) -> None:
    made: list[Snapshot] = []
    for i in range(9):
        snap = snapshot(
            f"n{(7 * i) % 9}",
            created_at=T0 + timedelta(hours=i // 3),  # three per instant: ties broken by id
            state="review" if i % 2 else "draft",
            process="travel" if i % 3 == 0 else "leave",
        )
        store.apply(start(snap.id, snapshot=snap, tasks=()), T0)
        made.append(snap)
    order = sorted(made, key=lambda s: (s.created_at, s.id))
    for limit in (1, 2, 4):
        for kw in ({}, {"state": "review"}, {"process": "leave", "state": "draft"}):
            got = walk(store.instance_page, limit=limit, **kw)
            wanted = [s.id for s in order if all(getattr(s, k) == v for k, v in kw.items())]
            assert [s.id for s in got] == wanted, (limit, kw)


def test_audit_pages_by_actor_include_acting_for_once(store: Store) -> None:
    people = [("u", None), ("v", "u"), ("u", "u"), ("w", None), ("v", None), ("u", "w")]
    records = [audit(None, "deploy", actor=a, on_behalf_of=b) for a, b in people * 3]
    seqs = store.append_audit(records, T0)
    mine = [s for s, r in zip(seqs, records, strict=True) if "u" in (r.actor, r.on_behalf_of)]
    for limit in (1, 2, 5):
        got = walk(store.audit_page, actor="u", limit=limit)
        assert [r["seq"] for r in got] == mine
        everything = walk(store.audit_page, limit=limit)
        assert [r["seq"] for r in everything] == seqs


def test_bad_limits_and_cursors_are_refused(store: Store) -> None:
    for bad in (0, -1, True, 2.5):
        with pytest.raises(InvalidData, match="limit: must be a whole number"):
            store.task_page(limit=bad)  # type: ignore[arg-type]
    tasks_cursor = paging.encode("tasks", T0, "a-1")
    assert store.task_page(after=tasks_cursor).items == []
    for bad in ("zzz", "", "!!", tasks_cursor[:-3], paging.encode("tasks", "x", "a-1")):
        with pytest.raises(InvalidData, match="not a cursor of the tasks listing"):
            store.task_page(after=bad)
    with pytest.raises(InvalidData, match="not a cursor of the audit listing"):
        store.audit_page(after=tasks_cursor)
    with pytest.raises(InvalidData, match="not a cursor of the instances listing"):
        store.instance_page(after=paging.encode("instances", "2024-01-01T00:00:00", "x"))


def test_migration_0002_copies_due_times_into_task_roles(db_url: str) -> None:
    """A database made by 0001 keeps its open tasks findable in due order after upgrading."""
    from alembic import command

    engine = open_engine(db_url)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
            due = T0 + timedelta(days=1)
            conn.exec_driver_sql(
                "INSERT INTO instances (id, process, version, state, status, variables, "
                "requester, task_seq, approvers, meta, created_at, updated_at, row_version) "
                "VALUES ('m1', 'leave', 1, 'review', 'active', '{}', 'alice', 1, '[]', '{}', "
                f"'{T0.isoformat()}', '{T0.isoformat()}', 0)"
            )
            conn.execute(
                sa.text(
                    "INSERT INTO tasks (id, instance_id, process, name, state, roles, mode, "
                    "actions, status, created_at, due_at, signoffs) VALUES ('m1-1', 'm1', "
                    "'leave', 'review', 'review', '[\"manager\"]', 'any', '[\"approve\"]', "
                    "'open', :t0, :due, '[]')"
                ),
                {
                    "t0": T0.replace(tzinfo=None) if conn.dialect.name == "sqlite" else T0,
                    "due": due.replace(tzinfo=None) if conn.dialect.name == "sqlite" else due,
                },
            )
            conn.exec_driver_sql(
                "INSERT INTO task_roles (task_id, role) VALUES ('m1-1', 'manager')"
            )
    finally:
        engine.dispose()
    with Store.open(db_url) as s:
        page = s.task_page(roles={"manager"}, overdue_at=due + timedelta(seconds=1))
        assert [t.id for t in page.items] == ["m1-1"]
        assert s.task_page(roles={"manager"}, overdue_at=due).items == []


# ---------------------------------------------------------------------- query plans


def test_sqlite_list_queries_walk_an_index_in_order(sqlite_url: str) -> None:
    """No temp B-tree (sort of every match) and the listing's own index, for each query."""
    with Store.open(sqlite_url) as s:
        queries: dict[str, tuple[Callable[[], object], str]] = {
            "inbox": (
                lambda: s.task_page(
                    roles={"manager", "clerk"}, after=paging.encode("tasks", T0, "a")
                ),
                "ix_task_roles_role_due_at_task_id",
            ),
            "overdue": (
                lambda: s.task_page(overdue_at=T0, after=paging.encode("tasks", T0, "a")),
                "ix_tasks_status_due_at_id",
            ),
            "instances --state": (
                lambda: s.instance_page(state="review"),
                "ix_instances_state_created_at_id",
            ),
            "audit --actor": (lambda: s.audit_page(actor="u"), "ix_audit_log_actor_seq"),
            "history": (lambda: s.query_audit(instance_id="i1"), "ix_audit_log_chain_key_seq"),
        }
        for name, (run, index) in queries.items():
            statements = captured(s, run)
            assert statements, name
            found = plans(s, statements)
            assert any(index in p for p in found), (name, found)
            assert not any("TEMP B-TREE" in p for p in found), (name, found)
            if name == "audit --actor":
                assert any("ix_audit_log_on_behalf_of_seq" in p for p in found), found


# ---------------------------------------------------------------------- my requests, my decisions


def fill_requests(store: Store, n: int, people: int) -> list[Snapshot]:
    """``n`` instances by ``people`` requesters, three per instant (ties broken by id)."""
    made = [
        snapshot(
            f"q{(37 * i) % n:05d}",
            created_at=T0 + timedelta(minutes=i // 3),
            requester=f"r{i % people}",
            status="completed" if i % 4 == 0 else "active",
        )
        for i in range(n)
    ]
    store.apply_batch([(start(s.id, snapshot=s, tasks=()), None) for s in made], T0)
    return made


def test_requester_pages_hold_each_of_their_requests_once_in_order(store: Store) -> None:
    made = fill_requests(store, 40, 3)
    order = sorted(made, key=lambda s: (s.created_at, s.id))
    for limit in (1, 4, 100):
        for kw in ({"requester": "r1"}, {"requester": "r2", "status": "active"}):
            got = walk(store.instance_page, limit=limit, **kw)
            wanted = [s.id for s in order if all(getattr(s, k) == v for k, v in kw.items())]
            assert wanted and [s.id for s in got] == wanted, (limit, kw)
    assert store.instance_page(requester="nobody").items == []


def test_decision_pages_list_an_actors_task_steps_newest_first(store: Store) -> None:
    people = ["u", "v", "u", "u", "w", "u"]
    records = [
        audit("i1", "approve", actor=a, task_id=f"i1-{n}", data={"comment": f"c{n}"})
        for n, a in enumerate(people)
    ]
    records.insert(2, audit("i1", "denied", actor="u", task_id="i1-9"))  # no decision
    records.insert(3, audit("i1", "start", actor="u"))  # not on a task
    seqs = store.append_audit(records, T0)
    mine = [
        s
        for s, r in zip(seqs, records, strict=True)
        if r.actor == "u" and r.task_id and r.action != "denied"
    ]
    for limit in (1, 2, 10):
        got = walk(store.decision_page, actor="u", limit=limit)
        assert [r["seq"] for r in got] == sorted(mine, reverse=True), limit
    assert [r["data"]["comment"] for r in walk(store.decision_page, actor="v")] == ["c1"]
    with pytest.raises(InvalidData, match="not a cursor of the done listing"):
        store.decision_page("u", after=paging.encode("audit", 3))


def test_my_requests_and_my_decisions_walk_their_index_on_both_databases(db_url: str) -> None:
    """A person's rows are a small part of the table (300 people): PostgreSQL, with
    statistics, reads them through the index (in order, or as a bitmap sorted after:
    a handful of rows); SQLite walks the index in order, with no sort of the matches."""
    with Store.open(db_url) as s:
        fill_requests(s, 3000, 300)
        s.append_audit(
            [audit("i1", "approve", actor=f"a{i % 300}", task_id=f"i1-{i}") for i in range(3000)],
            T0,
        )
        if s.dialect == "postgresql":
            with s.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        queries: dict[str, tuple[Callable[[], object], str]] = {
            "instances --requester": (
                lambda: s.instance_page(requester="r7", after=paging.encode("instances", T0, "q")),
                "ix_instances_requester_created_at_id",
            ),
            "tasks --done-by": (
                lambda: s.decision_page("a7", after=paging.encode("done", 2500)),
                "ix_audit_log_actor_seq",
            ),
        }
        for name, (run, index) in queries.items():
            statements = captured(s, run)
            assert statements, name
            found = plans(s, statements)
            assert any(index in p for p in found), (name, found)
            assert not any("TEMP B-TREE" in p for p in found), (name, found)
            assert not any("Seq Scan" in p for p in found), (name, found)


def test_tasks_for_named_people_are_found_by_their_name_and_keep_their_notes(
    store: Store,
) -> None:
    """A person slot stores one ``user:<id>`` key per person; a claim lists only the claimer;
    ``meta`` comes back as it was written."""
    shared = task("n1", 1, roles=("user:ann,bob", "cfo"), meta={"assigned": [{"why": "x"}]})
    claimed = task("n2", 1, roles=("clerk",), meta={"claimed_by": "cat"})
    store.apply(start("n1", tasks=(shared,)), T0)
    store.apply(start("n2", tasks=(claimed,)), T0)
    assert [t.id for t in walk(store.task_page, roles={"user:bob"})] == ["n1-1"]
    assert [t.id for t in walk(store.task_page, roles={"cfo"})] == ["n1-1"]
    assert walk(store.task_page, roles={"clerk"}) == []
    assert [t.id for t in walk(store.task_page, roles={"user:cat"})] == ["n2-1"]
    assert store.get_task("n1-1").meta == {"assigned": [{"why": "x"}]}
    assert store.get_task("n1-1").roles == ("user:ann,bob", "cfo")


def test_migration_0007_gives_existing_tasks_empty_notes_and_keeps_their_roles(
    db_url: str,
) -> None:
    from alembic import command

    engine = open_engine(db_url)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "0006")
            conn.exec_driver_sql(
                "INSERT INTO instances (id, process, version, state, status, variables, "
                "requester, task_seq, approvers, meta, created_at, updated_at, row_version) "
                "VALUES ('m1', 'leave', 1, 'review', 'active', '{}', 'alice', 1, '[]', '{}', "
                f"'{T0.isoformat()}', '{T0.isoformat()}', 0)"
            )
            conn.execute(
                sa.text(
                    "INSERT INTO tasks (id, instance_id, process, name, state, roles, mode, "
                    "actions, status, created_at, signoffs) VALUES ('m1-1', 'm1', "
                    "'leave', 'review', 'review', '[\"manager\"]', 'any', '[\"approve\"]', "
                    "'open', :t0, '[]')"
                ),
                {"t0": T0.replace(tzinfo=None) if conn.dialect.name == "sqlite" else T0},
            )
            conn.exec_driver_sql(
                "INSERT INTO task_roles (task_id, role) VALUES ('m1-1', 'manager')"
            )
    finally:
        engine.dispose()
    with Store.open(db_url) as s:
        assert s.get_task("m1-1").meta == {}
        assert [t.id for t in walk(s.task_page, roles={"manager"})] == ["m1-1"]
