"""Registers in the pure engine: definitions, validation with positions, pinned reads,
writes in the outcome, coercion of written values (storage is tests/storage)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.catalog import Catalog, load_catalog
from engine.errors import DefinitionError, ExpressionError
from engine.process import compile_process
from engine.registers import MemoryRegisters, Record, StoredRow, load_register
from engine.runtime import Act, Start, fire
from engine.yamlsafe import load_text
from tests.registers import make_processes

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return load_catalog([make_processes(tmp_path_factory.mktemp("p"))])


def problems(text: str, catalog: Catalog, file: str = "p.yaml") -> list[str]:
    with pytest.raises(DefinitionError) as err:
        compile_process(load_text(text, file), catalog.org, registers=catalog.registers)
    return [str(p) for p in err.value.problems]


def written(mem: MemoryRegisters, outcome: Any) -> None:
    for w in outcome.register_writes:
        mem.write(w.register, w.key, w.values, w.at)


# ---------------------------------------------------------------------- definitions


def test_register_file_loads_typed(catalog: Catalog) -> None:
    spec = catalog.registers["credit_limits"]
    assert spec.key.name == "customer"
    assert spec.writers == ("set_limit",)
    assert spec.fields["credit_limit"].type == "money"
    assert spec.new_row() == {
        "grade": None,
        "credit_limit": None,
        "term_days": 30,
        "reviewed_on": None,
    }
    # the processes know the register they use, and only that one
    assert set(catalog.processes["use_limit"].registers) == {"credit_limits"}


def test_register_file_problems_have_positions() -> None:
    text = (
        "register: book\n"
        "title: t\n"
        "key: {name: customer}\n"
        "fields:\n"
        "  customer: {type: string}\n"
        "  term: {type: integer, max: 5, default: 9}\n"
        "  colour: {type: enum}\n"
        "wat: 1\n"
    )
    with pytest.raises(DefinitionError) as err:
        load_register(load_text(text, "book.yaml"))
    found = [str(p) for p in err.value.problems]
    assert any(p.startswith("book.yaml:8:") and "unknown key 'wat'" in p for p in found), found
    assert any(p.startswith("book.yaml:7:") and "enum field needs 'values'" in p for p in found)


def test_field_named_like_the_key_and_bad_default() -> None:
    text = (
        "register: book\ntitle: t\nkey: {name: customer}\nfields:\n"
        "  customer: {type: string}\n  term: {type: integer, max: 5, default: 9}\n"
    )
    with pytest.raises(DefinitionError) as err:
        load_register(load_text(text, "book.yaml"))
    found = [str(p) for p in err.value.problems]
    assert any(p.startswith("book.yaml:5:") and "taken by the key" in p for p in found), found
    assert any(p.startswith("book.yaml:6:") and "default" in p for p in found), found


def test_catalog_without_registers(tmp_path: Path) -> None:
    folder = make_processes(tmp_path / "p")
    for p in (folder / "registers").iterdir():
        p.unlink()
    (folder / "registers").rmdir()
    (folder / "set_limit.yaml").unlink()
    text = (folder / "use_limit.yaml").read_text().replace("registers: {read: [credit_limits]}", "")
    (folder / "use_limit.yaml").write_text(text.split("start:")[0] + PLAIN_START)
    cat = load_catalog([folder])
    assert cat.registers == {}
    assert cat.processes["use_limit"].registers == {}


PLAIN_START = """start:
  require: [customer, amount]
  to: check
states:
  check:
    route:
      - {to: within}
  within:
    final: true
"""


# ---------------------------------------------------------------------- validation

BASE = """process: p
title: t
registers: {REGS}
variables:
  customer: {type: string}
  limit: {type: money}
start:
  require: [customer]
  set:
    limit: "{EXPR}"
  to: done
states:
  done:
    final: true
"""


def proc(regs: str, expr: str, extra: str = "") -> str:
    return BASE.replace("{REGS}", regs).replace("{EXPR}", expr) + extra


def test_reading_an_undeclared_register_is_refused_with_its_line(catalog: Catalog) -> None:
    found = problems(proc("{}", "register('credit_limits', customer).credit_limit"), catalog)
    assert len(found) == 1 and found[0].startswith("p.yaml:10:"), found
    assert "add it to 'registers: {read: [...]}'" in found[0]


def test_register_name_must_be_a_literal(catalog: Catalog) -> None:
    found = problems(
        proc("{read: [credit_limits]}", "register(customer, customer).credit_limit"), catalog
    )
    assert len(found) == 1 and "needs the register's name as quoted text" in found[0], found
    found = problems(proc("{read: [credit_limits]}", "register_keys | length"), catalog)
    assert "register_keys(...) needs the register's name" in found[0], found


def test_a_register_call_that_is_the_whole_expression_is_checked_like_any(
    catalog: Catalog,
) -> None:
    """``register_keys('x')`` alone is the root of its expression, not below it."""
    text = proc("{read: [credit_limits]}", "register_keys('credit_limits') | length")
    compile_process(load_text(text, "p.yaml"), catalog.org, registers=catalog.registers)
    whole = proc("{read: [credit_limits]}", "register_keys('credit_limits')")
    compile_process(load_text(whole, "p.yaml"), catalog.org, registers=catalog.registers)
    found = problems(proc("{}", "register_keys('credit_limits')"), catalog)
    assert len(found) == 1 and "reads register 'credit_limits'" in found[0], found


def test_unknown_register_in_the_lists(catalog: Catalog) -> None:
    found = problems(proc("{read: [nosuch]}", "0"), catalog)
    assert len(found) == 1 and found[0].startswith("p.yaml:3:"), found
    assert "unknown register 'nosuch'; known: credit_limits" in found[0]


def test_only_writers_write(catalog: Catalog) -> None:
    extra = (
        "    write:\n"
        "      - register: credit_limits\n"
        '        key: "customer"\n'
        '        set: {credit_limit: "limit", colour: "1"}\n'
    )
    found = problems(proc("{write: [credit_limits]}", "0", extra), catalog)
    assert any(
        p.startswith("p.yaml:3:") and "process 'p' is not a writer of register" in p for p in found
    ), found
    assert any(p.startswith("p.yaml:18:") and "has no field 'colour'" in p for p in found), found


def test_write_must_be_listed_under_registers_write(catalog: Catalog) -> None:
    extra = (
        "    write:\n"
        "      - register: credit_limits\n"
        '        key: "customer"\n'
        '        set: {credit_limit: "limit"}\n'
    )
    found = problems(proc("{read: [credit_limits]}", "0", extra), catalog)
    assert any(
        p.startswith("p.yaml:16:") and "is not in 'registers: {write: [...]}'" in p for p in found
    ), found


def test_live_values_cannot_read_registers(catalog: Catalog) -> None:
    text = proc("{read: [credit_limits]}", "0").replace(
        "  limit: {type: money}",
        "  limit: {type: money, live: \"register_keys('credit_limits') | length\"}",
    )
    found = problems(text, catalog)
    assert len(found) == 1 and "a live value cannot read a register" in found[0], found


# ---------------------------------------------------------------------- reads and writes


def start_use(catalog: Catalog, reader: Any, customer: str = "ACME", amount: str = "6000") -> Any:
    proc = catalog.processes["use_limit"]
    actor = catalog.org.actor("liu.yang")
    data = {"customer": customer, "amount": amount}
    return fire(proc, None, Start("u1"), actor, data, NOW, registers=reader)


def test_reads_see_the_register_and_are_recorded(catalog: Catalog) -> None:
    mem = MemoryRegisters()
    mem.write("credit_limits", "ACME", {"grade": "A", "credit_limit": "5000"}, NOW)
    mem.write("credit_limits", "BETA", {"grade": "B", "credit_limit": "1"}, NOW)
    out = start_use(catalog, mem.reader())
    assert out.snapshot.variables["credit_limit"] == "5000"
    assert out.snapshot.variables["grade"] == "A"
    assert out.snapshot.variables["known"] == 2
    assert out.snapshot.state == "over"  # 6000 > 5000: routed by the register, not input
    assert out.audit[0].data["registers_read"] == {"credit_limits": 2}
    assert all("registers_read" not in a.data for a in out.audit[1:])
    assert out.register_writes == ()


class Meddler(MemoryRegisters):
    """A reader under which someone writes the register right after the step's first read."""

    def __init__(self, mem: MemoryRegisters) -> None:
        super().__init__()
        self.history = mem.history
        self.done = False

    def get(self, register: str, key: str) -> StoredRow | None:
        row = super().get(register, key)
        if not self.done:
            self.done = True
            self.write(register, key, {"grade": "C", "credit_limit": "1"}, NOW)
            self.write(register, "GAMMA", {"grade": "C"}, NOW)
        return row


def test_every_read_of_a_step_sees_the_version_pinned_by_its_first(catalog: Catalog) -> None:
    mem = MemoryRegisters()
    mem.write("credit_limits", "ACME", {"grade": "A", "credit_limit": "5000"}, NOW)
    meddler = Meddler(mem)
    out = start_use(catalog, meddler)
    assert meddler.done and mem.current("credit_limits") == 3  # the writes did happen
    # ...but the step read version 1 throughout: grade A, one key
    assert out.snapshot.variables["grade"] == "A"
    assert out.snapshot.variables["credit_limit"] == "5000"
    assert out.snapshot.variables["known"] == 1
    assert out.audit[0].data["registers_read"] == {"credit_limits": 1}


def test_no_row_reads_none(catalog: Catalog) -> None:
    out = start_use(catalog, MemoryRegisters(), customer="NEW")
    assert out.snapshot.variables["credit_limit"] == "0"
    assert out.snapshot.state == "over"


def test_reading_without_a_reader_is_an_error(catalog: Catalog) -> None:
    with pytest.raises(ExpressionError, match="no register reader"):
        start_use(catalog, None)


def approve_limit(catalog: Catalog, mem: MemoryRegisters, **data: Any) -> Any:
    proc = catalog.processes["set_limit"]
    start = fire(
        proc,
        None,
        Start("s1"),
        catalog.org.actor("liu.yang"),
        {"customer": "ACME", **data},
        NOW,
        registers=mem.reader(),
    )
    assert start.register_writes == ()  # nothing is written before the approval
    task = start.snapshot.tasks[0]
    return fire(
        proc,
        start.snapshot,
        Act(task.id, "approve"),
        catalog.org.actor("lin.feng"),
        {},
        NOW,
        registers=mem.reader(),
    )


def test_a_final_state_writes_its_row(catalog: Catalog) -> None:
    mem = MemoryRegisters()
    out = approve_limit(catalog, mem, credit_limit="200000", grade="B")
    (w,) = out.register_writes
    assert (w.register, w.key, w.process, w.instance_id, w.actor) == (
        "credit_limits",
        "ACME",
        "set_limit",
        "s1",
        "lin.feng",
    )
    # a new row: the fields set, and the default of the others that have one
    assert w.values == {
        "grade": "B",
        "credit_limit": "200000",
        "reviewed_on": "2026-03-02",
        "term_days": 30,
    }
    assert w.read_version == 0  # read (empty) before writing: a lost update is refused
    entry = out.audit[0].data
    assert entry["register_writes"] == [
        {"register": "credit_limits", "key": "ACME", "set": w.values}
    ]
    assert entry["registers_read"] == {"credit_limits": 0}


def test_an_existing_row_keeps_the_fields_not_set(catalog: Catalog) -> None:
    mem = MemoryRegisters()
    mem.write("credit_limits", "ACME", {"term_days": 45, "credit_limit": "1"}, NOW)
    out = approve_limit(catalog, mem, credit_limit="300", grade="A")
    (w,) = out.register_writes
    assert w.values == {"grade": "A", "credit_limit": "300", "reviewed_on": "2026-03-02"}
    assert w.read_version == 1
    written(mem, out)
    row = mem.reader().get("credit_limits", "ACME")
    assert row is not None and row.values["term_days"] == 45


def test_a_written_value_is_coerced_to_the_field_type(catalog: Catalog) -> None:
    text = (catalog.processes["set_limit"].source_text).replace(
        'credit_limit: "credit_limit"', 'credit_limit: "credit_limit / 3"'
    )
    proc = compile_process(load_text(text, "s.yaml"), catalog.org, registers=catalog.registers)
    start = fire(
        proc,
        None,
        Start("s1"),
        catalog.org.actor("liu.yang"),
        {"customer": "ACME", "credit_limit": "100"},
        NOW,
        registers=MemoryRegisters(),
    )
    with pytest.raises(ExpressionError, match="credit_limits.credit_limit") as err:
        fire(
            proc,
            start.snapshot,
            Act(start.snapshot.tasks[0].id, "approve"),
            catalog.org.actor("lin.feng"),
            {},
            NOW,
            registers=MemoryRegisters(),
        )
    assert "s.yaml:" in str(err.value)  # names where the expression is


def test_records_are_typed_and_read_only() -> None:
    rec = Record("ACME", {"credit_limit": Decimal("5"), "reviewed_on": date(2026, 1, 2)}, 3)
    assert rec.key == "ACME" and rec.credit_limit == Decimal("5") and rec.version == 3
    with pytest.raises(AttributeError):
        rec.credit_limit = 1  # type: ignore[misc]
    with pytest.raises(AttributeError, match="no field 'nope'"):
        rec.nope  # noqa: B018


def test_register_changed_since_a_date(catalog: Catalog) -> None:
    mem = MemoryRegisters()
    mem.write("credit_limits", "OLD", {"grade": "A"}, datetime(2026, 1, 5, tzinfo=UTC))
    mem.write("credit_limits", "NEW", {"grade": "B"}, datetime(2026, 2, 5, tzinfo=UTC))
    text = proc(
        "{read: [credit_limits]}",
        "register_changed('credit_limits', add_days(today, -30)) | length",
    )
    p = compile_process(load_text(text, "c.yaml"), catalog.org, registers=catalog.registers)
    out = fire(
        p,
        None,
        Start("c1"),
        catalog.org.actor("liu.yang"),
        {"customer": "X"},
        NOW,
        registers=mem.reader(),
    )
    assert out.snapshot.variables["limit"] == "1"  # only NEW is within the last 30 days
