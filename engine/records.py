"""Plain, frozen records that flow between the pure engine and storage.

The engine reads a :class:`Snapshot` and returns an :class:`Outcome`; storage turns an
outcome into one transaction. Neither side hands the other live objects, so the engine
can be tested without a database and storage without a definition.
Variables here are already JSON-safe (``engine.values.encode``): Decimal as string, dates
as ISO text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from engine.sla import SlaClock
from engine.slots import lookup_keys, recipients

JSON = dict[str, Any]


# Each member's name is its value: the values are what storage holds and what queries and
# other layers pass as plain strings, and a StrEnum hashes by name, so only then does
# "open" find TaskStatus.open in a dict or set.


class InstanceStatus(StrEnum):
    active = "active"
    completed = "completed"  # a final state was reached
    withdrawn = "withdrawn"  # the requester took it back (撤回) before it was decided
    cancelled = "cancelled"  # its parent ended or moved on, and the spawn said cancel


ENDED = frozenset({InstanceStatus.completed, InstanceStatus.withdrawn, InstanceStatus.cancelled})


class TaskStatus(StrEnum):
    open = "open"
    done = "done"  # someone took an action that closed it
    cancelled = "cancelled"  # the instance moved away from it (escalation, withdrawal, rollback)


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
    withdrawn = "withdrawn"
    cancelled = "cancelled"  # a linked process cancelled with its parent (engine.links)
    transferred = "transferred"
    sent_back = "sent_back"
    cc = "cc"
    remind_now = "remind_now"
    signer_added = "signer_added"
    report_ready = "report_ready"  # a scheduled owner report, for the send_to roles


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
    """A human task as stored.

    ``roles`` are its slots (``engine.slots``): role ids or ``user:<id>[,<id>...]``, resolved
    when the task opened, never expressions. ``meta`` holds what only some tasks have:
    ``claimed_by`` (a role task taken by one person), ``assigned`` (who was resolved and
    why), ``queue`` (groups of added signers still to decide, each ``{roles, mode, kind}``),
    ``signed`` (signoffs of groups already done), ``reminded_at`` (last 催办).
    """

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
    meta: JSON = field(default_factory=dict)

    @property
    def pending_roles(self) -> tuple[str, ...]:
        """Slots still expected to act in the current group.

        All of them for `any` (none once someone signed it), the unsigned ones for `all`,
        the next one for `sequence`.
        """
        if self.status != TaskStatus.open:
            return ()
        if self.mode == "any":
            return () if self.signoffs else self.roles
        signed = [s.role for s in self.signoffs]
        if self.mode == "sequence":
            return self.roles[len(signed) : len(signed) + 1]
        return tuple(r for r in self.roles if r not in signed)

    @property
    def claimed_by(self) -> str | None:
        """The person who claimed this task (it is theirs alone until they release it)."""
        return self.meta.get("claimed_by")

    @property
    def queue(self) -> tuple[JSON, ...]:
        """Groups of signers still to come after the current one (加签)."""
        return tuple(self.meta.get("queue", ()))

    @property
    def pending_keys(self) -> tuple[str, ...]:
        """The ``task_roles`` rows of this task: who finds it in their list now."""
        return self._pending_as(lookup_keys)

    @property
    def pending_recipients(self) -> tuple[str, ...]:
        """Who a notice about this task goes to now."""
        return self._pending_as(recipients)

    def _pending_as(self, spell: Callable[[tuple[str, ...]], tuple[str, ...]]) -> tuple[str, ...]:
        """``spell`` of the slots still awaited; while the task is claimed, its claimer
        alone: a claim narrows who lists a task and who is told about it alike."""
        pending = self.pending_roles
        if not pending:
            return ()
        if self.claimed_by is not None:
            return (f"user:{self.claimed_by}",)
        return spell(pending)


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
class RegisterWrite:
    """One row a step writes to a register (engine.registers), applied by storage in the
    step's own transaction.

    ``values`` are JSON-encoded and hold only the fields the step set (the others keep
    their value). ``read_version`` is the version of the register the step read before
    writing (None: the step did not read it): storage refuses the write with Conflict if
    the row changed after that version, so a decision made on a stale row is not saved.
    """

    register: str
    key: str
    values: JSON
    read_version: int | None
    process: str
    instance_id: str | None
    actor: str
    at: datetime


@dataclass(frozen=True)
class SpawnRequest:
    """A child instance the step starts (linked processes, ``engine.links``).

    The engine stays pure: it names the child (``child_id``, derived from the parent's
    id), its requester and its start input; the service starts it in the same
    transaction as the parent's step, or refuses the whole step.
    """

    child_id: str
    process: str
    requester: str
    input: JSON  # start input, JSON-safe (engine.values.encode)
    wait: bool
    on_parent_end: str  # keep | cancel
    parent_id: str
    parent_process: str
    parent_state: str

    @property
    def parent(self) -> JSON:
        """What the child records of its parent (``meta.parent``)."""
        return {"id": self.parent_id, "process": self.parent_process, "state": self.parent_state}


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
    register_writes: tuple[RegisterWrite, ...] = ()  # rows written, in order
    # linked processes (engine.links): children to start, children to cancel, and the
    # parent to tell that this step ended a child; the service turns them into more
    # outcomes applied in the same transaction (service.links)
    spawns: tuple[SpawnRequest, ...] = ()
    cancel_children: tuple[str, ...] = ()
    tell_parent: str | None = None

    @property
    def linked(self) -> bool:
        """Whether applying this step means changing other instances too."""
        return bool(self.spawns or self.cancel_children or self.tell_parent)
