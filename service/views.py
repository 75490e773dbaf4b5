"""The JSON shapes of the public contract (CLI ``-o json`` and the HTTP API).

Scripts rely on these keys; add keys freely, never rename or drop one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from engine.records import Snapshot, TaskRecord
from engine.values import NUMERIC, VarType
from service.display import iso, iso_text, plain_number_text

__all__ = ["audit_json", "display_variables", "instance_json", "iso", "task_json"]


def task_json(
    task: TaskRecord, now: datetime | None = None, title: str | None = None
) -> dict[str, Any]:
    """A task; ``title`` (the state's task title from the definition) only when known."""
    pending = task.pending_roles
    data: dict[str, Any] = {
        "id": task.id,
        "instance_id": task.instance_id,
        "process": task.process,
        "name": task.name,
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
        "signoffs": [s.to_json() | {"at": iso(s.at)} for s in task.signoffs],
        "claimed_by": task.claimed_by,
    }
    if title:
        data["title"] = title
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
        # the opinion given with the step (审批意见), also inside ``data``; lifted out so a
        # table can show it
        "comment": (row["data"] or {}).get("comment"),
    }


def display_variables(types: Mapping[str, VarType], values: Mapping[str, Any]) -> dict[str, Any]:
    """Stored variable values as shown: numbers in plain notation, times in the display zone.

    Values are stored as ``str(Decimal)``, which may read ``1E+3`` or ``-0``; only variables
    declared numeric are rewritten, so a text that looks like a number stays as typed.
    """
    shown: dict[str, Any] = {}
    for key, value in values.items():
        vtype = types.get(key)
        if vtype in NUMERIC:
            shown[key] = plain_number_text(value)
        elif vtype is VarType.datetime:
            shown[key] = iso_text(value)
        else:
            shown[key] = value
    return shown
