"""Plain, frozen records that flow between the pure engine and storage.

The engine reads a :class:`Snapshot` and returns an :class:`Outcome`; storage turns an
outcome into one transaction. Neither side hands the other live objects, so the engine
can be tested without a database and storage without a definition.
Variables here are already JSON-safe (``engine.values.encode``): Decimal as string, dates
as ISO text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from engine.sla import SlaClock

JSON = dict[str, Any]


# Each member's name is its value: the values are what storage holds and what queries and
# other layers pass as plain strings, and a StrEnum hashes by name, so only then does
# "open" find TaskStatus.open in a dict or set.


class InstanceStatus(StrEnum):
    active = "active"
    completed = "completed"  # a final state was reached


class TaskStatus(StrEnum):
    open = "open"
    done = "done"  # someone took an action that closed it
    cancelled = "cancelled"  # an escalation moved the instance away from it


class TimerStatus(StrEnum):
    pending = "pending"
    fired = "fired"
    cancelled = "cancelled"  # its state was left, or the SLA clock moved


class TimerKind(StrEnum):
    deadline = "deadline"
    reminder = "reminder"
    escalation = "escalation"


class NoticeEvent(StrEnum):
    """What a notice is about (the key of its message template)."""

    task_assigned = "task_assigned"
    reminder = "reminder"
    overdue = "overdue"
    escalated = "escalated"
    completed = "completed"
    schedule_failed = "schedule_failed"


@dataclass(frozen=True)
class Signoff:
    """One person's act inside a multi-person task (会签 / 依次)."""

    user: str
    role: str
    action: str
    at: datetime
    on_behalf_of: str | None = None
    comment: str | None = None

    def to_json(self) -> JSON:
        return {
            "user": self.user,
            "role": self.role,
            "action": self.action,
            "at": self.at.isoformat(),
            "on_behalf_of": self.on_behalf_of,
            "comment": self.comment,
        }

    @classmethod
    def from_json(cls, data: JSON) -> Signoff:
        return cls(
            user=data["user"],
            role=data["role"],
            action=data["action"],
            at=datetime.fromisoformat(data["at"]),
            on_behalf_of=data.get("on_behalf_of"),
            comment=data.get("comment"),
        )


@dataclass(frozen=True)
class TaskRecord:
    """A human task as stored. ``roles`` are the roles that may act (resolved, not expressions)."""

    id: str
    instance_id: str
    process: str
    name: str
    state: str
    roles: tuple[str, ...]
    mode: str  # any | all | sequence
    actions: tuple[str, ...]
    status: str  # a TaskStatus
    created_at: datetime
    due_at: datetime | None = None
    closed_at: datetime | None = None
    decision: str | None = None
    decided_by: str | None = None
    signoffs: tuple[Signoff, ...] = ()

    @property
    def pending_roles(self) -> tuple[str, ...]:
        """Roles still expected to act.

        All of them for `any`, the unsigned ones for `all`, the next one for `sequence`.
        """
        if self.status != TaskStatus.open:
            return ()
        if self.mode == "any":
            return self.roles
        signed = [s.role for s in self.signoffs]
        if self.mode == "sequence":
            return self.roles[len(signed) : len(signed) + 1]
        return tuple(r for r in self.roles if r not in signed)


@dataclass(frozen=True)
class Snapshot:
    """Everything the engine needs to know about one instance to fire an event on it."""

    id: str
    process: str
    version: int
    state: str
    status: str  # an InstanceStatus
    variables: JSON
    requester: str
    created_at: datetime
    updated_at: datetime
    row_version: int = 0
    tasks: tuple[TaskRecord, ...] = ()  # open tasks only
    task_seq: int = 0  # how many tasks this instance has ever opened (task ids are derived)
    approvers: tuple[str, ...] = ()  # users who acted on an earlier task (four-eyes)
    outcome: str | None = None  # the final state's outcome once completed
    meta: JSON = field(default_factory=dict)  # engine bookkeeping: {"sla": SlaClock JSON}

    @property
    def sla(self) -> SlaClock | None:
        """The instance deadline clock, if the process has one."""
        data = self.meta.get("sla")
        return SlaClock.from_json(data) if data else None


@dataclass(frozen=True)
class AuditRecord:
    """One audit line before storage gives it its sequence number and hash."""

    at: datetime  # effective time (the `now` the step ran as of)
    actor: str
    action: str
    process: str
    instance_id: str | None
    from_state: str | None
    to_state: str | None
    on_behalf_of: str | None = None
    task_id: str | None = None
    data: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class TimerRecord:
    """A timer to set; storage keys it by ``id`` so setting it twice is a no-op."""

    id: str
    instance_id: str
    kind: str  # a TimerKind
    due_at: datetime
    state: str
    task_id: str | None = None
    data: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    """A notification to put in the outbox in the same transaction as the step."""

    event: str  # a NoticeEvent
    recipients: tuple[str, ...]  # user:<id> or role:<id>
    instance_id: str | None  # None for a notice about no instance (a scheduled run that failed)
    task_id: str | None = None
    data: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What one fired event changes. Storage applies all of it atomically, or none."""

    snapshot: Snapshot  # the instance after the step (row_version NOT yet bumped)
    expected_row_version: int | None  # None for a new instance (insert)
    opened: tuple[TaskRecord, ...] = ()
    changed: tuple[TaskRecord, ...] = ()  # existing tasks, as they are after the step
    audit: tuple[AuditRecord, ...] = ()
    timers_set: tuple[TimerRecord, ...] = ()
    timers_cancel_states: tuple[str, ...] = ()  # cancel every pending timer of these states
    notices: tuple[Notice, ...] = ()
