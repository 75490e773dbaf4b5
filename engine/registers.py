"""Registers: typed, versioned books that process steps write and other processes read.

A register file (first key ``register:``) declares a book such as the customer credit
table: its key, its typed fields (the same types as process variables) and the processes
whose steps may write it. A process lists the registers it reads and writes
(``registers: {read: [...], write: [...]}``); a state writes rows on entry (``write:``)
and every expression may read them (``register('name', key)``, ``register_keys``,
``register_rows``, ``register_changed``).

The engine stays pure: ``fire`` is handed a :class:`RegisterReader` (storage's answers
JSON-encoded, as of one version per register, pinned on the first read of the step), and
returns the rows to write as :class:`engine.records.RegisterWrite` for storage to apply
in the step's own transaction. :class:`RegisterAccess` is the step's view: it decodes
rows to typed values and records which version of each register the step read, so the
audit says what a decision was based on and storage can refuse a lost update.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from decimal import Decimal
from typing import Any, Protocol

from pydantic import Field, model_validator

from engine import bounds
from engine.errors import DefinitionError, ExpressionError, InvalidData, Problem
from engine.validation import Frozen, parse_model
from engine.values import VarType, coerce, decode, encode
from engine.yamlsafe import Document

NAME = r"^[a-z][a-z0-9_]{0,63}$"
# the expression functions that read registers; their first argument must be a string
# literal naming a register the process declares (checked by engine.process)
REGISTER_FUNCTIONS = frozenset({"register", "register_keys", "register_rows", "register_changed"})
MAX_KEY = 200  # characters of a key: a customer id or name, never a document
RESERVED_FIELDS = frozenset({"key"})  # ``.key`` of a record is its key


# --------------------------------------------------------------------------- definitions


class RegisterKey(Frozen):
    """The key of a register's rows (text: a customer id, a visitor's id number...)."""

    name: str = Field(pattern=NAME, description="What the key is called (e.g. customer).")
    title: str = ""


class FieldSpec(Frozen):
    """One field of a register row; the same types and options as a process variable."""

    type: VarType
    title: str = ""
    description: str = ""
    values: tuple[str, ...] = Field(default=(), description="Allowed values of an enum.")
    min: Decimal | None = Field(default=None, description="Inclusive lower bound (numbers).")
    max: Decimal | None = Field(default=None, description="Inclusive upper bound (numbers).")
    default: Any = Field(default=None, description="Value of a new row the write leaves unset.")

    @model_validator(mode="after")
    def _enum_values(self) -> FieldSpec:
        if self.type is VarType.enum and not self.values:
            raise ValueError("an enum field needs 'values'")
        if self.type is not VarType.enum and self.values:
            raise ValueError("'values' is only for enum fields")
        return self

    def coerce(self, name: str, raw: Any) -> Any:
        """``raw`` as this field's Python value, or InvalidData naming the field."""
        return coerce(name, self.type, raw, values=self.values, minimum=self.min, maximum=self.max)


class RegisterSpec(Frozen):
    """A register definition file."""

    name: str = Field(
        alias="register", pattern=NAME, description="The register id (lowercase, a-z0-9_)."
    )
    title: str
    description: str = ""
    key: RegisterKey
    fields: dict[str, FieldSpec] = Field(description="The typed fields of a row.")
    writers: tuple[str, ...] = Field(
        default=(), description="The only processes whose steps may write this register."
    )
    importers: tuple[str, ...] = Field(
        default=(),
        description="The roles whose holders may import rows (run.py register import): an "
        "import bypasses the writer processes and their approvals. None listed: no import.",
    )

    def decode_row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Stored JSON -> typed values, every field present (None when unset)."""
        out: dict[str, Any] = {}
        for name, spec in self.fields.items():
            raw = values.get(name)
            out[name] = decode(spec.type, raw) if raw is not None else None
        return out

    def new_row(self) -> dict[str, Any]:
        """A row that does not exist yet: each field's default, else None (JSON form)."""
        return {
            name: encode(spec.coerce(name, spec.default)) if spec.default is not None else None
            for name, spec in self.fields.items()
        }


def load_register(doc: Document) -> RegisterSpec:
    """Validate a register document, reporting every problem with file:line:col."""
    spec = parse_model(RegisterSpec, doc)
    problems: list[Problem] = []
    for name, fspec in spec.fields.items():
        path = ("fields", name)
        if not re.match(NAME, name):
            problems.append(doc.problem(path, f"field name {name!r} must match {NAME}"))
        if name in RESERVED_FIELDS or name == spec.key.name:
            problems.append(
                doc.problem(path, f"field name {name!r} is taken by the key (record.key)")
            )
        if fspec.default is not None:
            try:
                fspec.coerce(name, fspec.default)
            except InvalidData as exc:
                problems.append(doc.problem((*path, "default"), f"default: {exc.reason}"))
        if fspec.type is VarType.user:
            problems.append(
                doc.problem((*path, "type"), "a register field cannot be of type user; use string")
            )
    if not spec.fields:
        problems.append(doc.problem(("fields",), "a register needs at least one field"))
    for i, writer in enumerate(spec.writers):
        if not re.match(NAME, writer):
            problems.append(doc.problem(("writers", i), f"{writer!r} is not a process id"))
    for i, role in enumerate(spec.importers):
        if not re.match(NAME, role):
            problems.append(doc.problem(("importers", i), f"{role!r} is not a role id"))
    if problems:
        raise DefinitionError(problems)
    return spec


def check_key(register: str, key: Any) -> str:
    """A key as stored: non-empty text of at most MAX_KEY characters, no control characters."""
    if isinstance(key, bool) or key is None:
        raise InvalidData("key", f"register {register!r} needs a text key, got {key!r}")
    if isinstance(key, int | Decimal):
        key = str(key)
    if not isinstance(key, str):
        raise InvalidData(
            "key", f"register {register!r} needs a text key, got {type(key).__name__}"
        )
    key = key.strip()
    if not key:
        raise InvalidData("key", f"register {register!r}: the key is empty")
    if len(key) > MAX_KEY:
        raise InvalidData("key", f"register {register!r}: key longer than {MAX_KEY} characters")
    if any(ord(c) < 32 or c == "\x7f" for c in key):
        raise InvalidData("key", f"register {register!r}: the key holds a control character")
    return key


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class StoredRow:
    """One row as storage answers it: JSON values, and the register version that last
    wrote it."""

    key: str
    values: Mapping[str, Any]
    version: int
    updated_at: datetime | None = None


class RegisterReader(Protocol):
    """What storage answers the engine about registers, all as of one version per register.

    An implementation pins a register's version on the first call that names it (any of
    these methods) and answers every later call of the same step as of that version, so
    the step sees one consistent book. ``version`` returns the pinned version (0: a
    register never written).
    """

    def version(self, register: str) -> int: ...

    def get(self, register: str, key: str) -> StoredRow | None: ...

    def keys(self, register: str) -> list[str]: ...

    def rows(self, register: str) -> list[StoredRow]: ...

    def changed_since(self, register: str, since: datetime) -> list[str]: ...


class Record:
    """A register row as an expression sees it: fields as attributes (typed), ``.key``.

    Read-only: the sandbox cannot set attributes, and there is no method to call.
    """

    __slots__ = ("_key", "_values", "_version")

    def __init__(self, key: str, values: Mapping[str, Any], version: int) -> None:
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_version", version)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a register record is read-only")

    @property
    def key(self) -> str:
        return self._key

    @property
    def version(self) -> int:
        """The register version that last wrote this row."""
        return self._version

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError(f"the register has no field {name!r}")

    def __getitem__(self, name: str) -> Any:
        if name == "key":
            return self._key
        return self.__getattr__(name)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Record) and other._key == self._key and other._values == self._values
        )

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"Record({self._key!r}, {self._values!r})"


class NoRegisters:
    """The reader of a step that was given none: any read is an error that says so."""

    def _refuse(self, register: str) -> Any:
        raise ExpressionError(
            f"register({register!r})",
            "this step was given no register reader (the process declares no "
            "'registers:', or the caller did not pass one)",
        )

    def version(self, register: str) -> int:
        return self._refuse(register)

    def get(self, register: str, key: str) -> StoredRow | None:
        return self._refuse(register)

    def keys(self, register: str) -> list[str]:
        return self._refuse(register)

    def rows(self, register: str) -> list[StoredRow]:
        return self._refuse(register)

    def changed_since(self, register: str, since: datetime) -> list[str]:
        return self._refuse(register)


@dataclass
class RegisterAccess:
    """A step's view of the registers its process declares: typed reads, versions recorded.

    ``read_versions`` is what the audit entry records (``registers_read``) and what a
    write checks against (``read_version``): the version each register was pinned at.
    """

    reader: RegisterReader
    specs: Mapping[str, RegisterSpec]
    tz: tzinfo | None = None
    read_versions: dict[str, int] = field(default_factory=dict)

    def spec(self, register: Any) -> RegisterSpec:
        if not isinstance(register, str) or register not in self.specs:
            raise ExpressionError(f"register({register!r})", "not a register this process declares")
        return self.specs[register]

    def _pin(self, register: str) -> None:
        if register not in self.read_versions:
            self.read_versions[register] = int(self.reader.version(register))

    def record(self, spec: RegisterSpec, row: StoredRow) -> Record:
        values = spec.decode_row(row.values)
        values[spec.key.name] = row.key
        return Record(row.key, values, row.version)

    def get(self, register: Any, key: Any) -> Record | None:
        spec = self.spec(register)
        if key is None:
            return None
        try:
            key = check_key(spec.name, key)
        except InvalidData as exc:
            raise ExpressionError(f"register({register!r}, ...)", exc.reason) from None
        self._pin(spec.name)
        row = self.reader.get(spec.name, key)
        return self.record(spec, row) if row is not None else None

    def keys(self, register: Any) -> list[str]:
        spec = self.spec(register)
        self._pin(spec.name)
        return bounds.produced(sorted(self.reader.keys(spec.name)))

    def rows(self, register: Any) -> list[Record]:
        spec = self.spec(register)
        self._pin(spec.name)
        rows = self.reader.rows(spec.name)
        bounds.charge(len(rows))
        return bounds.produced([self.record(spec, r) for r in sorted(rows, key=_by_key)])

    def changed(self, register: Any, since: Any) -> list[str]:
        spec = self.spec(register)
        if isinstance(since, datetime):
            when = since if since.tzinfo is not None else since.replace(tzinfo=self.tz)
        elif isinstance(since, date):
            when = datetime.combine(since, time(0), tzinfo=self.tz)
        else:
            raise ExpressionError(
                f"register_changed({register!r}, ...)",
                f"'since' must be a date or a time, got {type(since).__name__}",
            )
        if when.tzinfo is None:
            raise ExpressionError(
                f"register_changed({register!r}, ...)", "'since' needs a time zone"
            )
        self._pin(spec.name)
        return bounds.produced(sorted(set(self.reader.changed_since(spec.name, when))))

    def functions(self) -> dict[str, Any]:
        """The expression functions (REGISTER_FUNCTIONS) bound to this step."""
        functions = {
            "register": self.get,
            "register_keys": self.keys,
            "register_rows": self.rows,
            "register_changed": self.changed,
        }
        assert functions.keys() == REGISTER_FUNCTIONS
        return functions


# The reader ``fire`` was handed, for the steps it builds (engine.steps.Step): a context
# variable rather than an argument of every rule's function, set only while ``fire`` runs.
_READER: ContextVar[RegisterReader | None] = ContextVar("shenpi_register_reader", default=None)


@contextmanager
def reading(reader: RegisterReader | None) -> Iterator[None]:
    """Steps built inside this block read registers through ``reader``."""
    token = _READER.set(reader)
    try:
        yield
    finally:
        _READER.reset(token)


def step_access(specs: Mapping[str, RegisterSpec], tz: tzinfo | None) -> RegisterAccess:
    """A new step's access: the reader ``fire`` was given (or one refusing every read)."""
    return RegisterAccess(_READER.get() or NoRegisters(), specs, tz)


def _by_key(row: StoredRow) -> str:
    return row.key


# --------------------------------------------------------------------------- in memory


@dataclass
class _Version:
    version: int
    key: str
    values: dict[str, Any]
    at: datetime


class MemoryRegisters:
    """Registers held in memory with their history: for tests of the pure engine and for
    scenario helpers (storage/registers.py is the real one). Reads pin like storage's."""

    def __init__(self) -> None:
        self.history: dict[str, list[_Version]] = {}
        self.pinned: dict[str, int] = {}

    def reader(self) -> MemoryRegisters:
        """A fresh reader for one step (nothing pinned)."""
        other = MemoryRegisters()
        other.history = self.history
        return other

    def current(self, register: str) -> int:
        rows = self.history.get(register, [])
        return rows[-1].version if rows else 0

    def write(self, register: str, key: str, values: Mapping[str, Any], at: datetime) -> int:
        """Store ``values`` (JSON, the fields set) on top of the row's; the new version."""
        old = self._as_of(register, self.current(register)).get(key)
        merged = {**(old.values if old else {}), **values}
        version = self.current(register) + 1
        self.history.setdefault(register, []).append(_Version(version, key, merged, at))
        return version

    def _as_of(self, register: str, version: int) -> dict[str, _Version]:
        out: dict[str, _Version] = {}
        for v in self.history.get(register, []):
            if v.version <= version:
                out[v.key] = v
        return out

    def version(self, register: str) -> int:
        if register not in self.pinned:
            self.pinned[register] = self.current(register)
        return self.pinned[register]

    def get(self, register: str, key: str) -> StoredRow | None:
        v = self._as_of(register, self.version(register)).get(key)
        return StoredRow(v.key, v.values, v.version, v.at) if v else None

    def keys(self, register: str) -> list[str]:
        return sorted(self._as_of(register, self.version(register)))

    def rows(self, register: str) -> list[StoredRow]:
        rows = self._as_of(register, self.version(register)).values()
        return [StoredRow(v.key, v.values, v.version, v.at) for v in rows]

    def changed_since(self, register: str, since: datetime) -> list[str]:
        pinned = self.version(register)
        return sorted(
            {v.key for v in self.history.get(register, []) if v.version <= pinned and v.at >= since}
        )
