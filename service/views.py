"""The JSON shapes of the public contract (CLI ``-o json`` and the HTTP API).

Scripts rely on these keys; add keys freely, never rename or drop one.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.records import Snapshot, TaskRecord

DISPLAY_TZ = ZoneInfo(os.environ.get("SHENPI_TZ", "Asia/Shanghai"))


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with offset, in the display zone (Asia/Shanghai unless SHENPI_TZ says else)."""
    return value.astimezone(DISPLAY_TZ).isoformat() if value is not None else None


def task_json(task: TaskRecord, now: datetime | None = None, title: str = "") -> dict[str, Any]:
    pending = task.pending_roles
    data: dict[str, Any] = {
        "id": task.id,
        "instance_id": task.instance_id,
        "process": task.process,
        "name": task.name,
        "title": title,
        "state": task.state,
        "role": (pending or task.roles or (None,))[0],
        "roles": list(task.roles),
        "pending_roles": list(pending),
        "mode": task.mode,
        "status": task.status,
        "actions": list(task.actions),
        "due_at": iso(task.due_at),
        "overdue": bool(task.due_at and now and task.status == "open" and now > task.due_at),
        "created_at": iso(task.created_at),
        "closed_at": iso(task.closed_at),
        "decision": task.decision,
        "decided_by": task.decided_by,
        "signoffs": [s.to_json() for s in task.signoffs],
    }
    if task.due_at and now and task.status == "open":
        data["seconds_left"] = int((task.due_at - now).total_seconds())
    return data


def instance_json(
    snapshot: Snapshot,
    variables: dict[str, Any],
    tasks: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": snapshot.id,
        "process": snapshot.process,
        "version": snapshot.version,
        "state": snapshot.state,
        "status": snapshot.status,
        "outcome": snapshot.outcome,
        "requester": snapshot.requester,
        "variables": variables,
        "tasks": tasks,
        "created_at": iso(snapshot.created_at),
        "updated_at": iso(snapshot.updated_at),
    }
    data.update(extra)
    return data


def audit_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "at": iso(row["at"]),
        "recorded_at": iso(row["recorded_at"]),
        "actor": row["actor"],
        "on_behalf_of": row["on_behalf_of"],
        "instance_id": row["instance_id"],
        "process": row["process"],
        "task_id": row.get("task_id"),
        "action": row["action"],
        "from_state": row["from_state"],
        "to_state": row["to_state"],
        "data": row["data"],
    }
