"""What the ``registers`` and ``register`` commands (and the HTTP face) show and do.

Reading a register needs its definition (``registers/`` beside org.yaml) and the database;
importing the initial book validates every row of the file against the field types first
and writes nothing unless all of them are good, then writes them in one transaction with
one audit entry naming the operator, the file's sha256 and the row count.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import (
    DefinitionError,
    InvalidData,
    NotFound,
    NotPermitted,
    Problem,
    WorkflowError,
)
from engine.records import AuditRecord, RegisterWrite
from engine.registers import RegisterSpec, StoredRow, check_key
from engine.values import encode
from service.display import iso

if TYPE_CHECKING:
    from service.workflow import Workflow

IMPORT_ACTION = "register_import"
MAX_IMPORT_BYTES = 50 * 1024 * 1024  # an initial book, not a data warehouse
FORMATS = ("csv", "json")


def spec_of(wf: Workflow, name: str) -> RegisterSpec:
    """The register's definition, or NotFound listing the known ones."""
    regs = wf.catalog.registers
    if name not in regs:
        known = ", ".join(sorted(regs)) or "none"
        raise NotFound("register", name, f"known registers: {known} (see 'run.py registers')")
    return regs[name]


def process_label(name: str) -> str:
    """The ``process`` column of a register's own audit entries (imports)."""
    return f"register:{name}"


def list_registers(
    wf: Workflow | None, specs: Mapping[str, RegisterSpec] | None = None
) -> list[dict[str, Any]]:
    """Every register defined, with its row count and version (0 before any write).
    Without a database (``wf`` None) the definitions of ``specs`` alone, all empty."""
    counts = wf.store.registers.versions() if wf is not None else {}
    specs = specs if specs is not None else wf.catalog.registers if wf is not None else {}
    return [
        {
            "register": name,
            "title": spec.title,
            "rows": counts.get(name, (0, 0))[1],
            "version": counts.get(name, (0, 0))[0],
            "writers": list(spec.writers),
        }
        for name, spec in sorted(specs.items())
    ]


def row_json(spec: RegisterSpec, row: StoredRow) -> dict[str, Any]:
    """A row for display: key, every field (JSON form, None when unset), version, time."""
    fields = {f: row.values.get(f) for f in spec.fields}
    return (
        {spec.key.name: row.key}
        | fields
        | {
            "version": row.version,
            "updated_at": iso(row.updated_at),
        }
    )


def show_rows(
    wf: Workflow, name: str, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of rows in key order, after key ``after``; the next page's ``after``."""
    spec = spec_of(wf, name)
    rows = wf.store.registers.page(name, after, limit + 1)
    page = rows[:limit]
    nxt = page[-1].key if len(rows) > limit else None
    return [row_json(spec, r) for r in page], nxt


def show_row(wf: Workflow, name: str, key: str) -> dict[str, Any]:
    spec = spec_of(wf, name)
    row = wf.store.registers.get(name, key)
    if row is None:
        raise NotFound("register row", key, f"register {name!r} has no row with this key")
    return row_json(spec, row)


def history(wf: Workflow, name: str, key: str) -> list[dict[str, Any]]:
    """Every version of a row: when, who, how (write or import), and each field's change."""
    spec = spec_of(wf, name)
    rows = wf.store.registers.history(name, key)
    if not rows:
        raise NotFound("register row", key, f"register {name!r} has no row with this key")
    out = []
    for r in rows:
        new, old = r["values"] or {}, r["previous"] or {}
        changes = {
            f: {"old": old.get(f), "new": new.get(f)}
            for f in spec.fields
            if old.get(f) != new.get(f)
        }
        out.append(
            {
                "version": r["version"],
                "at": iso(r["at"]),
                "recorded_at": iso(r["recorded_at"]),
                "actor": r["actor"],
                "action": r["action"],
                "process": r["process"],
                "instance_id": r["instance_id"],
                "changes": changes,
            }
        )
    return out


# --------------------------------------------------------------------------- import


def _cells_csv(text: str, file: str, spec: RegisterSpec) -> tuple[list[tuple[int, dict]], list]:
    """CSV rows as (line, {column: (col, text)}); problems with the header. A file the
    csv module cannot read (a cell beyond its field limit) is one problem at its line,
    not a traceback."""
    reader = csv.reader(io.StringIO(text))
    try:
        return _read_csv(reader, file, spec)
    except csv.Error as exc:
        return [], [Problem(file, max(reader.line_num, 1), 1, f"not readable as CSV: {exc}")]


def _read_csv(reader: Any, file: str, spec: RegisterSpec) -> tuple[list[tuple[int, dict]], list]:
    problems: list[Problem] = []
    header = next(reader, None)
    if not header:
        return [], [Problem(file, 1, 1, "empty file: the first line names the columns")]
    header = [h.strip() for h in header]
    allowed = {spec.key.name, *spec.fields}
    for i, col in enumerate(header, 1):
        if col not in allowed:
            problems.append(
                Problem(
                    file,
                    1,
                    i,
                    f"unknown column {col!r}; columns: {spec.key.name}, {', '.join(spec.fields)}",
                )
            )
    if spec.key.name not in header:
        problems.append(Problem(file, 1, 1, f"no {spec.key.name!r} column (the key)"))
    if len(set(header)) != len(header):
        problems.append(Problem(file, 1, 1, "a column is named twice"))
    rows = []
    for line in reader:
        if not any(c.strip() for c in line):
            continue
        n = reader.line_num
        if len(line) != len(header):
            problems.append(
                Problem(file, n, 1, f"{len(line)} cells where the header has {len(header)}")
            )
            continue
        rows.append((n, {h: (i, c) for i, (h, c) in enumerate(zip(header, line, strict=True), 1)}))
    return rows, problems


def _cells_json(data: Any, file: str, spec: RegisterSpec) -> tuple[list[tuple[int, dict]], list]:
    """A JSON array of objects as (item number, {field: (position, value)})."""
    if not isinstance(data, list):
        return [], [Problem(file, 1, 1, "expected a JSON array of objects, one per row")]
    rows, problems = [], []
    for n, item in enumerate(data, 1):
        if not isinstance(item, dict):
            problems.append(Problem(file, n, 1, f"row {n} is not an object"))
            continue
        rows.append((n, {str(k): (i, v) for i, (k, v) in enumerate(item.items(), 1)}))
        for i, k in enumerate(item, 1):
            if k not in {spec.key.name, *spec.fields}:
                problems.append(Problem(file, n, i, f"unknown field {k!r}"))
        if spec.key.name not in item:
            problems.append(Problem(file, n, 1, f"no {spec.key.name!r} (the key)"))
    return rows, problems


def parse_import(
    spec: RegisterSpec, raw: bytes, file: str, fmt: str
) -> list[tuple[str, dict[str, Any]]]:
    """Every row of the file as (key, JSON values of the cells given), validated against
    the field types; DefinitionError listing every bad cell (file:row:column) otherwise."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WorkflowError(f"{file}: not UTF-8 text") from None
    if fmt == "csv":
        rows, problems = _cells_csv(text, file, spec)
        empty: Any = ""
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DefinitionError(
                [Problem(file, exc.lineno, exc.colno, f"not JSON: {exc.msg}")]
            ) from None
        except (RecursionError, ValueError) as exc:
            # nesting too deep for the decoder, an integer too long to convert: hostile
            # or broken input, refused in one line rather than a traceback
            reason = "nested too deeply" if isinstance(exc, RecursionError) else "a number too long"
            raise DefinitionError(
                [Problem(file, 1, 1, f"not JSON we can read: {reason}")]
            ) from None
        rows, problems = _cells_json(data, file, spec)
        empty = None
    out: list[tuple[str, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for n, cells in rows:
        key = None
        if spec.key.name in cells:
            col, raw_key = cells[spec.key.name]
            try:
                key = check_key(spec.name, raw_key)
            except InvalidData as exc:
                problems.append(Problem(file, n, col, exc.reason))
            if key is not None and key in seen:
                problems.append(Problem(file, n, col, f"key {key!r} is also on row {seen[key]}"))
            if key is not None:
                seen.setdefault(key, n)
        values: dict[str, Any] = {}
        for fname, (col, value) in cells.items():
            if fname not in spec.fields:
                continue
            if isinstance(value, str) and fmt == "csv":
                value = value.strip()
            if value == empty or value is None:
                continue
            try:
                values[fname] = encode(spec.fields[fname].coerce(fname, value))
            except InvalidData as exc:
                problems.append(Problem(file, n, col, f"{fname}: {exc.reason}"))
        if key is not None:
            out.append((key, values))
    if problems:
        raise DefinitionError(problems)
    if not out:
        raise WorkflowError(f"{file}: no rows to import")
    return out


def import_file(
    wf: Workflow,
    name: str,
    path: Path,
    fmt: str | None,
    user: str,
    now: datetime,
    comment: str | None = None,
) -> dict[str, Any]:
    """Validate every row of ``path``, then write them all as one import; what was done."""
    spec = spec_of(wf, name)
    actor = wf.org.actor(user)  # the audit names who imported: a real, active person
    if not actor.roles & set(spec.importers):
        # an import bypasses the writer processes and their approvals (the credit table's
        # GM approval): only the roles the register names may do it
        needs = (
            f"needs role {' or '.join(spec.importers)}"
            if spec.importers
            else "it names no importers in its file"
        )
        raise NotPermitted(f"{user} may not import into register {name!r}: {needs}")
    fmt = fmt or (path.suffix.lstrip(".").lower() if path.suffix else "csv")
    if fmt not in FORMATS:
        raise WorkflowError(f"--format {fmt!r}: choose csv or json")
    try:
        if path.stat().st_size > MAX_IMPORT_BYTES:
            raise WorkflowError(f"{path}: larger than {MAX_IMPORT_BYTES // 2**20} MB")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WorkflowError(f"{path}: no such file") from None
    rows = parse_import(spec, raw, str(path), fmt)
    existing = {r.key for r in wf.store.registers.rows(name)}
    defaults = {k: v for k, v in spec.new_row().items() if v is not None}
    label = process_label(name)
    writes = [
        RegisterWrite(
            register=name,
            key=key,
            values=values if key in existing else defaults | values,
            read_version=None,
            process=label,
            instance_id=None,
            actor=user,
            at=now,
        )
        for key, values in rows
    ]
    digest = hashlib.sha256(raw).hexdigest()
    audit = AuditRecord(
        at=now,
        actor=user,
        action=IMPORT_ACTION,
        process=label,
        instance_id=None,
        from_state=None,
        to_state=None,
        data={"register": name, "file": path.name, "sha256": digest, "rows": len(writes)}
        | ({"comment": comment} if comment else {}),
    )
    versions = wf.store.registers.import_rows(writes, audit, wf.clock())
    return {
        "register": name,
        "rows": len(writes),
        "sha256": digest,
        "versions": [versions[0], versions[-1]],
        "new": sum(1 for k, _ in rows if k not in existing),
    }


def changes_text(changes: Mapping[str, Mapping[str, Any]]) -> str:
    """``field: old -> new; ...`` for a history table."""
    return "; ".join(f"{f}: {_plain(c['old'])} -> {_plain(c['new'])}" for f, c in changes.items())


def _plain(value: Any) -> str:
    return "-" if value is None else str(value)


def known_columns(spec: RegisterSpec) -> Sequence[str]:
    return [spec.key.name, *spec.fields, "version", "updated_at"]
