"""Registers in the database, SQLite and PostgreSQL: versions, history, reads as of the
version a step pinned, lost updates refused, and writes atomic with their step."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.errors import Conflict, RegisterConflict
from engine.records import AuditRecord, RegisterWrite
from engine.runtime import Act, Start, fire
from service.workflow import Workflow
from storage.registers import StoreRegisterReader
from tests.registers import make_processes

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
REG = "credit_limits"


@pytest.fixture
def wf(db_url: str, tmp_path: Path) -> Iterator[Workflow]:
    w = Workflow.open(db_url, make_processes(tmp_path / "p"), create=True)
    w.cache = None
    w.deploy(now=T0)
    try:
        yield w
    finally:
        w.store.close()


def put(wf: Workflow, key: str, at: datetime = T0, read: int | None = None, **values: str) -> int:
    """One write outside any step (as an import does); its version."""
    w = RegisterWrite(REG, key, dict(values), read, "register:x", None, "lin.feng", at)
    audit = AuditRecord(at, "lin.feng", "register_import", "register:x", None, None, None)
    return wf.store.registers.import_rows([w], audit, at)[0]


def approve(wf: Workflow, customer: str, limit: str) -> str:
    snap = wf.start("set_limit", "liu.yang", {"customer": customer, "credit_limit": limit}, T0)
    wf.act(snap.tasks[0].id, "approve", "lin.feng", now=T0)
    return snap.id


def test_versions_count_every_write_and_history_keeps_old_and_new(wf: Workflow) -> None:
    tables = wf.store.registers
    assert tables.version(REG) == 0 and tables.rows(REG) == []
    assert put(wf, "ACME", credit_limit="100", grade="A") == 1
    assert put(wf, "BETA", credit_limit="5") == 2
    iid = approve(wf, "ACME", "200")
    assert tables.version(REG) == 3
    assert tables.versions() == {REG: (3, 2)}
    row = tables.get(REG, "ACME")
    assert row is not None and row.version == 3
    # the fields the step did not set keep their value... the test process sets grade
    # (to none, as it was not given), credit_limit and reviewed_on
    assert row.values["credit_limit"] == "200" and row.values["grade"] is None
    hist = tables.history(REG, "ACME")
    assert [(h["version"], h["action"], h["actor"]) for h in hist] == [
        (1, "import", "lin.feng"),
        (3, "write", "lin.feng"),
    ]
    assert hist[1]["previous"]["credit_limit"] == "100"
    assert hist[1]["values"]["credit_limit"] == "200"
    assert (hist[1]["process"], hist[1]["instance_id"]) == ("set_limit", iid)


def test_reads_answer_as_of_the_pinned_version(wf: Workflow) -> None:
    put(wf, "ACME", credit_limit="100")
    reader = StoreRegisterReader(wf.store.registers)
    assert reader.get(REG, "ACME").values["credit_limit"] == "100"  # pins version 1
    put(wf, "ACME", credit_limit="999", at=T0 + timedelta(days=1))
    put(wf, "NEW", credit_limit="1", at=T0 + timedelta(days=1))
    assert reader.version(REG) == 1
    assert reader.get(REG, "ACME").values["credit_limit"] == "100"
    assert reader.get(REG, "NEW") is None
    assert reader.keys(REG) == ["ACME"]
    assert [r.values["credit_limit"] for r in reader.rows(REG)] == ["100"]
    assert reader.changed_since(REG, T0 + timedelta(hours=1)) == []
    fresh = StoreRegisterReader(wf.store.registers)
    assert fresh.keys(REG) == ["ACME", "NEW"]
    assert fresh.get(REG, "ACME").values["credit_limit"] == "999"
    assert fresh.changed_since(REG, T0 + timedelta(hours=1)) == ["ACME", "NEW"]


def test_a_step_records_the_version_it_read(wf: Workflow) -> None:
    put(wf, "ACME", credit_limit="5000", grade="A")
    snap = wf.start("use_limit", "liu.yang", {"customer": "ACME", "amount": "6000"}, T0)
    assert snap.state == "over"
    entries = wf.store.query_audit(instance_id=snap.id)
    (entry,) = [e for e in entries if e["action"] == "start"]
    assert entry["data"]["registers_read"] == {REG: 1}


def test_a_lost_update_is_refused_and_changes_nothing(wf: Workflow) -> None:
    put(wf, "ACME", credit_limit="100")
    proc = wf.process("set_limit")
    snap = wf.start("set_limit", "liu.yang", {"customer": "ACME", "credit_limit": "7"}, T0)
    before = wf.store.load_snapshot(snap.id)
    out = fire(
        proc,
        before,
        Act(before.tasks[0].id, "approve"),
        wf.actor("lin.feng"),
        {},
        T0,
        registers=wf.reader(proc),
    )
    assert out.register_writes[0].read_version == 1
    put(wf, "ACME", credit_limit="555")  # someone else, after the step read version 1
    with pytest.raises(RegisterConflict, match="'ACME' was changed"):
        wf.store.apply(out, T0)
    assert wf.store.load_snapshot(snap.id).row_version == before.row_version
    assert wf.store.load_snapshot(snap.id).state == "review"
    assert wf.store.registers.get(REG, "ACME").values["credit_limit"] == "555"
    assert wf.store.registers.version(REG) == 2
    # a write of another key is no conflict
    other = replace(out.register_writes[0], key="OTHER")
    wf.store.apply(replace(out, register_writes=(other,)), T0)
    assert wf.store.registers.get(REG, "OTHER").values["credit_limit"] == "7"


def test_a_step_that_fails_to_apply_writes_no_register_row(wf: Workflow) -> None:
    proc = wf.process("set_limit")
    snap = wf.start("set_limit", "liu.yang", {"customer": "ACME", "credit_limit": "7"}, T0)
    before = wf.store.load_snapshot(snap.id)
    out = fire(
        proc,
        before,
        Act(before.tasks[0].id, "approve"),
        wf.actor("lin.feng"),
        {},
        T0,
        registers=wf.reader(proc),
    )
    assert out.register_writes
    wf.act(before.tasks[0].id, "reject", "lin.feng", now=T0)  # the instance moves on first
    with pytest.raises(Conflict):
        wf.store.apply(out, T0)
    assert wf.store.registers.version(REG) == 0
    assert wf.store.registers.get(REG, "ACME") is None
    assert wf.store.registers.history(REG, "ACME") == []


def test_batch_applies_register_writes_one_step_at_a_time(wf: Workflow) -> None:
    """The tick's batch path (and group commit) carry a step's writes with the step."""
    procs = wf.process("set_limit")
    outs = []
    for customer in ("A1", "B2"):
        snap = wf.start("set_limit", "liu.yang", {"customer": customer, "credit_limit": "1"}, T0)
        before = wf.store.load_snapshot(snap.id)
        outs.append(
            fire(
                procs,
                before,
                Act(before.tasks[0].id, "approve"),
                wf.actor("lin.feng"),
                {},
                T0,
                registers=wf.reader(procs),
            )
        )
    stale = replace(outs[1], expected_row_version=99)  # this one lost its race
    results = wf.store.apply_batch([(outs[0], None), (stale, None)], T0)
    assert not isinstance(results[0], Conflict) and isinstance(results[1], Conflict)
    assert [r.key for r in wf.store.registers.rows(REG)] == ["A1"]
    assert wf.store.registers.version(REG) == 1


def test_start_of_a_process_reading_registers_without_rows(wf: Workflow) -> None:
    snap = wf.start("use_limit", "liu.yang", {"customer": "NOBODY", "amount": "1"}, T0)
    assert snap.state == "over" and snap.variables["credit_limit"] == "0"
    fresh = fire(
        wf.process("use_limit"),
        None,
        Start("x"),
        wf.actor("liu.yang"),
        {"customer": "NOBODY", "amount": "0"},
        T0,
        registers=wf.reader(wf.process("use_limit")),
    )
    assert fresh.snapshot.state == "within"


def test_two_steps_writing_one_row_from_the_same_version_one_wins(wf: Workflow) -> None:
    """Two approvals of the same customer decided side by side: the second to commit read
    a version the first has since overtaken, so it is refused and can be tried again."""
    proc = wf.process("set_limit")
    outs = []
    for limit in ("10", "20"):
        snap = wf.start("set_limit", "liu.yang", {"customer": "ACME", "credit_limit": limit}, T0)
        before = wf.store.load_snapshot(snap.id)
        outs.append(
            fire(
                proc,
                before,
                Act(before.tasks[0].id, "approve"),
                wf.actor("lin.feng"),
                {},
                T0,
                registers=wf.reader(proc),
            )
        )
    assert [o.register_writes[0].read_version for o in outs] == [0, 0]
    wf.store.apply(outs[0], T0)
    with pytest.raises(RegisterConflict):
        wf.store.apply(outs[1], T0)
    assert wf.store.registers.get(REG, "ACME").values["credit_limit"] == "10"
    assert [h["instance_id"] for h in wf.store.registers.history(REG, "ACME")] == [
        outs[0].snapshot.id
    ]
    # tried again, the step reads version 1 and goes through
    again = outs[1].snapshot.id
    task = wf.store.load_snapshot(again).tasks[0].id
    wf.act(task, "approve", "lin.feng", now=T0)
    assert wf.store.registers.get(REG, "ACME").values["credit_limit"] == "20"
    assert wf.store.registers.version(REG) == 2


def test_concurrent_writers_of_one_row_cannot_both_commit(wf: Workflow) -> None:
    """The same race on two threads at once: the register's counter row orders them, and
    the later one finds the row already overtaken (never both, never a database error)."""
    import threading

    proc = wf.process("set_limit")
    outs = []
    for limit in ("10", "20"):
        snap = wf.start("set_limit", "liu.yang", {"customer": "ACME", "credit_limit": limit}, T0)
        before = wf.store.load_snapshot(snap.id)
        event = Act(before.tasks[0].id, "approve")
        actor = wf.actor("lin.feng")
        outs.append(fire(proc, before, event, actor, {}, T0, registers=wf.reader(proc)))
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def apply(i: int) -> None:
        barrier.wait()
        try:
            wf.store.apply(outs[i], T0)
            results[i] = "ok"
        except Exception as exc:  # noqa: BLE001 - the test asserts on what it was
            results[i] = exc

    threads = [threading.Thread(target=apply, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(type(r).__name__ for r in results) == ["RegisterConflict", "str"], results
    assert len(wf.store.registers.history(REG, "ACME")) == 1


def test_one_step_may_write_one_row_twice(wf: Workflow) -> None:
    """Two writes of one row by the same step (two states entered in one step) are not a
    lost update of each other: both apply, in order."""
    proc = wf.process("set_limit")
    snap = wf.start("set_limit", "liu.yang", {"customer": "ACME", "credit_limit": "7"}, T0)
    before = wf.store.load_snapshot(snap.id)
    out = fire(
        proc,
        before,
        Act(before.tasks[0].id, "approve"),
        wf.actor("lin.feng"),
        {},
        T0,
        registers=wf.reader(proc),
    )
    (first,) = out.register_writes
    second = replace(first, values={"credit_limit": "8"})
    wf.store.apply(replace(out, register_writes=(first, second)), T0)
    assert wf.store.registers.get(REG, "ACME").values["credit_limit"] == "8"
    assert [h["version"] for h in wf.store.registers.history(REG, "ACME")] == [1, 2]


def test_migration_0011_adds_and_removes_only_its_three_tables(db_url: str) -> None:
    import sqlalchemy as sa
    from alembic import command

    from storage.db import alembic_config, open_database

    mine = {"registers", "register_rows", "register_history"}
    engine = open_database(db_url)
    try:
        with engine.begin() as conn:
            before = set(sa.inspect(conn).get_table_names())
            assert mine <= before
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0010")
            assert set(sa.inspect(conn).get_table_names()) == before - mine
            command.upgrade(config, "head")
            assert set(sa.inspect(conn).get_table_names()) == before
            indexes = {i["name"] for i in sa.inspect(conn).get_indexes("register_history")}
            assert {
                "ix_register_history_register_key_version",
                "ix_register_history_register_at",
            } <= indexes
    finally:
        engine.dispose()
