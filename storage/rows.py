"""Rows to records and records to rows: the one converter between storage and the engine.

Rows come in two shapes, from SQLAlchemy (values already typed by ``storage.tables``)
and straight from the DBAPI cursor on the hot path (SQLite gives text for times and
JSON, psycopg gives objects). The readers here accept both, so every record is built
in one place; the :class:`Binder` turns values into what one dialect's driver takes,
exactly as the SQLAlchemy types would, so rows written either way are the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from engine.records import AuditRecord, Signoff, Snapshot, TaskRecord, TimerRecord


def aware(value: datetime, name: str) -> datetime:
    """``value`` unchanged; ValueError if it has no time zone (a guess would shift it)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return value


def utc(value: datetime) -> datetime:
    """An aware instant in UTC; naive input is refused rather than guessed at."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: storage needs timezone-aware times")
    return value.astimezone(UTC)


def sqlite_time(value: datetime) -> str:
    """How SQLite stores an instant: fixed-width naive UTC text, so ORDER BY is by time."""
    return utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


def time_out(value: str | datetime | None) -> datetime | None:
    """A stored instant back as an aware UTC datetime (SQLite text or a driver datetime)."""
    if value is None:
        return None
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def json_out(value: Any) -> Any:
    """A stored JSON value, parsed (SQLite's raw cursor gives text, everything else objects)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def task_record(r: Mapping[str, Any]) -> TaskRecord:
    return TaskRecord(
        id=r["id"],
        instance_id=r["instance_id"],
        process=r["process"],
        name=r["name"],
        state=r["state"],
        roles=tuple(json_out(r["roles"])),
        mode=r["mode"],
        actions=tuple(json_out(r["actions"])),
        status=r["status"],
        created_at=time_out(r["created_at"]),  # type: ignore[arg-type]
        due_at=time_out(r["due_at"]),
        closed_at=time_out(r["closed_at"]),
        decision=r["decision"],
        decided_by=r["decided_by"],
        signoffs=tuple(Signoff.from_json(s) for s in json_out(r["signoffs"])),
        meta=json_out(r["meta"]) or {},
    )


def snapshot_record(r: Mapping[str, Any], open_tasks: Sequence[TaskRecord] = ()) -> Snapshot:
    return Snapshot(
        id=r["id"],
        process=r["process"],
        version=r["version"],
        state=r["state"],
        status=r["status"],
        variables=json_out(r["variables"]),
        requester=r["requester"],
        created_at=time_out(r["created_at"]),  # type: ignore[arg-type]
        updated_at=time_out(r["updated_at"]),  # type: ignore[arg-type]
        row_version=r["row_version"],
        tasks=tuple(open_tasks),
        task_seq=r["task_seq"],
        approvers=tuple(json_out(r["approvers"])),
        outcome=r["outcome"],
        meta=json_out(r["meta"]),
    )


def timer_record(r: Mapping[str, Any]) -> TimerRecord:
    return TimerRecord(
        id=r["id"],
        instance_id=r["instance_id"],
        kind=r["kind"],
        due_at=time_out(r["due_at"]),  # type: ignore[arg-type]
        state=r["state"],
        task_id=r["task_id"],
        data=json_out(r["data"]),
    )


def chain_key(record: AuditRecord) -> str:
    """Chains are per instance so PostgreSQL writers on different instances never queue."""
    return record.instance_id if record.instance_id is not None else f"process:{record.process}"


def audit_entry(rec: AuditRecord, recorded_at: datetime) -> dict[str, Any]:
    """An audit record as the columns of its row, all but seq and the chain link.

    ``data`` is encoded once: the text is what SQLite stores, and its parse is what any
    backend gives back, so the hash (storage.audithash) is computed over that.
    """
    aware(rec.at, "audit at")
    text = json.dumps(rec.data)
    return {
        "at": rec.at,
        "recorded_at": recorded_at,
        "actor": rec.actor,
        "on_behalf_of": rec.on_behalf_of,
        "process": rec.process,
        "instance_id": rec.instance_id,
        "task_id": rec.task_id,
        "action": rec.action,
        "from_state": rec.from_state,
        "to_state": rec.to_state,
        "data": json.loads(text),
        "chain_key": chain_key(rec),
        "data_text": text,
    }


class Binder:
    """Values as one dialect's driver takes them: PostgreSQL aware datetimes and Jsonb,
    SQLite naive-UTC text and JSON text (as ``storage.tables.UTCDateTime`` binds them)."""

    def __init__(self, pg: bool) -> None:
        self.pg = pg
        if pg:
            from psycopg.types.json import Jsonb

            self.json_in: Any = Jsonb
        else:
            self.json_in = json.dumps

    def when(self, value: datetime | None) -> Any:
        if value is None:
            return None
        return utc(value) if self.pg else sqlite_time(value)

    def task_params(self, task: TaskRecord) -> dict[str, Any]:
        return {
            "id": task.id,
            "instance_id": task.instance_id,
            "process": task.process,
            "name": task.name,
            "state": task.state,
            "roles": self.json_in(list(task.roles)),
            "mode": task.mode,
            "actions": self.json_in(list(task.actions)),
            "status": task.status,
            "created_at": self.when(task.created_at),
            "due_at": self.when(task.due_at),
            "closed_at": self.when(task.closed_at),
            "decision": task.decision,
            "decided_by": task.decided_by,
            "signoffs": self.json_in([s.to_json() for s in task.signoffs]),
            "meta": self.json_in(task.meta),
        }

    def audit_params(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """The row of an :func:`audit_entry` (without the chain link)."""
        row = dict(entry)
        text = row.pop("data_text")
        row["at"] = self.when(entry["at"])
        row["recorded_at"] = self.when(entry["recorded_at"])
        row["data"] = self.json_in(entry["data"]) if self.pg else text
        return row
