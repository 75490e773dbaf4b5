"""Registers in the database: writes inside a step's transaction, reads as of a version.

Every write bumps the register's counter in ``registers`` (the row lock orders the
writers of one register), appends a ``register_history`` row (the full row after the
write, the one before, who, which instance) and upserts the current row in
``register_rows``. A step reads through a :class:`StoreRegisterReader`, which pins each
register's version on its first read and answers every read as of that version, from the
current rows where they are old enough and from the history where they are newer; so
all the reads of one step see one book, whatever is written meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.errors import RegisterConflict
from engine.records import AuditRecord, RegisterWrite
from engine.registers import StoredRow
from storage.cursor import RawSQL
from storage.rows import Binder, aware, json_out
from storage.tables import register_history, register_rows, registers

if TYPE_CHECKING:
    from storage.steps import StepWriter
    from storage.store import Store

IMPORT = "import"
WRITE = "write"


class RegisterWriter:
    """The statements that write register rows, on the cursor of a step's transaction."""

    def __init__(self, sql: RawSQL, bind: Binder) -> None:
        self.sql = sql
        self.bind = bind
        q = sql._quote
        self.BUMP = sql.sql(
            "INSERT INTO registers (name, version) VALUES (:name, 1) ON CONFLICT (name) "
            "DO UPDATE SET version = registers.version + 1 RETURNING version"
        )
        self.ROW = sql.sql(
            f"SELECT version, {q('values')} FROM register_rows "
            f"WHERE {q('register')} = :register AND {q('key')} = :key"
        )
        row_cols = [c.name for c in register_rows.c]
        self.UPSERT_ROW = sql.insert(
            register_rows,
            row_cols,
            f" ON CONFLICT ({q('register')}, {q('key')}) DO UPDATE SET "
            + ", ".join(f"{q(c)} = excluded.{q(c)}" for c in ("version", "values", "updated_at")),
        )
        self.INSERT_HISTORY = sql.insert(register_history, [c.name for c in register_history.c])

    def apply(
        self,
        cur: Any,
        writes: Sequence[RegisterWrite],
        recorded_at: datetime,
        action: str = WRITE,
    ) -> list[int]:
        """Write each row; the versions given. RegisterConflict if a row changed after the
        version its step read it at (the caller's transaction then writes nothing)."""
        json_in, when = self.bind.json_in, self.bind.when
        recorded = when(aware(recorded_at, "recorded_at"))
        versions = []
        mine: dict[tuple[str, str], int] = {}  # rows this call wrote: no conflict with itself
        for w in writes:
            # the counter first: its row lock queues the other writers of this register,
            # so the current row read next cannot change before this transaction ends
            version = int(self.sql.run(cur, self.BUMP, {"name": w.register}).fetchone()[0])
            found = self.sql.run(cur, self.ROW, {"register": w.register, "key": w.key}).fetchone()
            previous = json_out(found[1]) if found is not None else None
            stale = found is not None and w.read_version is not None and found[0] > w.read_version
            if stale and mine.get((w.register, w.key)) != found[0]:
                raise RegisterConflict(
                    w.instance_id or f"register:{w.register}",
                    w.register,
                    w.key,
                    w.read_version,
                    int(found[0]),
                )
            values = {**(previous or {}), **w.values}
            self.sql.run(
                cur,
                self.INSERT_HISTORY,
                {
                    "register": w.register,
                    "version": version,
                    "key": w.key,
                    "values": json_in(values),
                    "previous": json_in(previous) if previous is not None else None,
                    "action": action,
                    "actor": w.actor,
                    "process": w.process,
                    "instance_id": w.instance_id,
                    "at": when(w.at),
                    "recorded_at": recorded,
                },
            )
            self.sql.run(
                cur,
                self.UPSERT_ROW,
                {
                    "register": w.register,
                    "key": w.key,
                    "version": version,
                    "values": json_in(values),
                    "updated_at": when(w.at),
                },
            )
            versions.append(version)
            mine[w.register, w.key] = version
        return versions


class RegisterTables:
    """The register queries of a Store (``store.registers``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def _steps(self) -> StepWriter:
        return self.store._steps

    # ------------------------------------------------------------------ reading

    def version(self, register: str) -> int:
        """The register's current version (0: never written)."""
        with self.store._read() as conn:
            found = conn.execute(
                sa.select(registers.c.version).where(registers.c.name == register)
            ).scalar()
        return int(found or 0)

    def versions(self) -> dict[str, tuple[int, int]]:
        """Register -> (version, rows) for every register ever written."""
        counts = (
            sa.select(register_rows.c.register, sa.func.count().label("n"))
            .group_by(register_rows.c.register)
            .subquery()
        )
        stmt = sa.select(registers.c.name, registers.c.version, counts.c.n).join_from(
            registers, counts, counts.c.register == registers.c.name, isouter=True
        )
        with self.store._read() as conn:
            return {r.name: (int(r.version), int(r.n or 0)) for r in conn.execute(stmt)}

    def get(self, register: str, key: str, as_of: int | None = None) -> StoredRow | None:
        """A row as it was at version ``as_of`` (None: now)."""
        with self.store._read() as conn:
            if as_of is None:
                r = conn.execute(
                    sa.select(register_rows).where(
                        register_rows.c.register == register, register_rows.c["key"] == key
                    )
                ).first()
                return (
                    _row(r._mapping["key"], r._mapping["values"], r.version, r.updated_at)
                    if r is not None
                    else None
                )
            h = register_history.c
            r = conn.execute(
                sa.select(h["key"], h["values"], h.version, h.at)
                .where(h.register == register, h["key"] == key, h.version <= as_of)
                .order_by(h.version.desc())
                .limit(1)
            ).first()
            return (
                _row(r._mapping["key"], r._mapping["values"], r.version, r.at)
                if r is not None
                else None
            )

    def rows(self, register: str, as_of: int | None = None) -> list[StoredRow]:
        """Every row as it was at version ``as_of`` (None: now), by key.

        The current rows written at or before ``as_of`` are that version's; only the
        rows written since are looked up in the history (a step's reads run a moment
        after its pin, so these are few).
        """
        out: list[StoredRow] = []
        newer: list[str] = []
        with self.store._snapshot() as conn:
            stmt = (
                sa.select(register_rows)
                .where(register_rows.c.register == register)
                .order_by(register_rows.c["key"])
            )
            for r in conn.execute(stmt):
                if as_of is None or r.version <= as_of:
                    out.append(
                        _row(r._mapping["key"], r._mapping["values"], r.version, r.updated_at)
                    )
                else:
                    newer.append(r._mapping["key"])
            h = register_history.c
            for key in newer:
                r = conn.execute(
                    sa.select(h["key"], h["values"], h.version, h.at)
                    .where(h.register == register, h["key"] == key, h.version <= as_of)
                    .order_by(h.version.desc())
                    .limit(1)
                ).first()
                if r is not None:
                    out.append(_row(r._mapping["key"], r._mapping["values"], r.version, r.at))
        return sorted(out, key=lambda row: row.key)

    def keys(self, register: str, as_of: int | None = None) -> list[str]:
        """The keys of the rows as of version ``as_of`` (None: now), without their values."""
        c, h = register_rows.c, register_history.c
        with self.store._snapshot() as conn:
            found = conn.execute(sa.select(c["key"], c.version).where(c.register == register)).all()
            out = [k for k, v in found if as_of is None or v <= as_of]
            for key in (k for k, v in found if as_of is not None and v > as_of):
                older = conn.execute(
                    sa.select(h.version)
                    .where(h.register == register, h["key"] == key, h.version <= as_of)
                    .limit(1)
                ).first()
                if older is not None:
                    out.append(key)
        return sorted(out)

    def page(self, register: str, after: str | None, limit: int) -> list[StoredRow]:
        """Up to ``limit`` current rows with keys after ``after``, by key (the primary key
        index: a page costs the same at the start and the end of a large register)."""
        c = register_rows.c
        stmt = sa.select(register_rows).where(c.register == register)
        if after is not None:
            stmt = stmt.where(c["key"] > after)
        stmt = stmt.order_by(c["key"]).limit(limit)
        with self.store._read() as conn:
            return [
                _row(r._mapping["key"], r._mapping["values"], r.version, r.updated_at)
                for r in conn.execute(stmt)
            ]

    def changed_since(self, register: str, since: datetime, as_of: int | None = None) -> list[str]:
        """Keys of the rows written at or after ``since`` (effective time), up to ``as_of``."""
        h = register_history.c
        stmt = sa.select(h["key"]).distinct().where(h.register == register, h.at >= since)
        if as_of is not None:
            stmt = stmt.where(h.version <= as_of)
        with self.store._read() as conn:
            return sorted(r[0] for r in conn.execute(stmt))

    def history(self, register: str, key: str) -> list[dict[str, Any]]:
        """Every version of one row, oldest first."""
        h = register_history.c
        stmt = (
            sa.select(register_history)
            .where(h.register == register, h["key"] == key)
            .order_by(h.version)
        )
        with self.store._read() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    # ------------------------------------------------------------------ writing

    def import_rows(
        self,
        writes: Sequence[RegisterWrite],
        audit: AuditRecord,
        recorded_at: datetime,
    ) -> list[int]:
        """The rows of an import and its audit entry, in one transaction; the versions."""
        steps = self._steps
        rows = steps.audit_rows([audit], recorded_at)
        with steps.transaction(write=True) as cur:
            versions = steps.registers.apply(cur, writes, recorded_at, action=IMPORT)
            steps.append_audit(cur, rows)
        return versions


class StoreRegisterReader:
    """A step's reads of the registers (engine.registers.RegisterReader): each register
    pinned at its version on the first read, every read answered as of that version."""

    def __init__(self, tables: RegisterTables) -> None:
        self.tables = tables
        self.pinned: dict[str, int] = {}

    def version(self, register: str) -> int:
        if register not in self.pinned:
            self.pinned[register] = self.tables.version(register)
        return self.pinned[register]

    def get(self, register: str, key: str) -> StoredRow | None:
        return self.tables.get(register, key, self.version(register))

    def keys(self, register: str) -> list[str]:
        return self.tables.keys(register, self.version(register))

    def rows(self, register: str) -> list[StoredRow]:
        return self.tables.rows(register, self.version(register))

    def changed_since(self, register: str, since: datetime) -> list[str]:
        return self.tables.changed_since(register, since, self.version(register))


def _row(key: str, values: Any, version: int, at: datetime | None) -> StoredRow:
    parsed = json_out(values)
    return StoredRow(key, dict(parsed) if isinstance(parsed, Mapping) else {}, int(version), at)
