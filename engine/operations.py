"""The events besides taking an action: what approvers and requesters do around a task.

Each is a plain frozen record handed to ``engine.runtime.fire`` like ``Act``; the rules of
each live in the module named for them. They are the Feishu/DingTalk approval
operations: 撤回 withdraw, 转交 transfer, 加签 add signers, 退回 send back, 抄送 cc,
催办 remind, and claiming a role task.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Where(StrEnum):
    """Where added signers (加签) decide relative to the person adding them."""

    before = "before"  # they decide first, then the task comes back to the adder
    after = "after"  # the adder agrees now; they decide next
    parallel = "parallel"  # they join the adder's countersign


@dataclass(frozen=True)
class Withdraw:
    """The requester takes back an active instance (撤回); its open tasks are cancelled."""

    comment: str | None = None


@dataclass(frozen=True)
class Cc:
    """Notify-only readers (抄送): told now, and may ``show`` the instance."""

    users: tuple[str, ...]
    comment: str | None = None


@dataclass(frozen=True)
class Transfer:
    """The actor's turn on the task goes to ``to`` alone (转交)."""

    task_id: str
    to: str
    comment: str | None = None


@dataclass(frozen=True)
class AddSigners:
    """Add people to the task (加签), ``where`` relative to the actor, ``mode`` among them."""

    task_id: str
    users: tuple[str, ...]
    where: Where
    mode: str = "any"
    comment: str | None = None


@dataclass(frozen=True)
class Rollback:
    """Send the instance back (退回) to an earlier state, or to the requester (``start``)."""

    task_id: str
    to: str
    comment: str | None = None


@dataclass(frozen=True)
class Remind:
    """Remind whoever the task waits for, now (催办); at most once an hour per task."""

    task_id: str
    comment: str | None = None


@dataclass(frozen=True)
class Claim:
    """Take a role task: it is the actor's alone until they release it."""

    task_id: str


@dataclass(frozen=True)
class Unclaim:
    """Release a claimed task back to everyone it was assigned to."""

    task_id: str


TaskOperation = Transfer | AddSigners | Rollback | Remind | Claim | Unclaim
InstanceOperation = Withdraw | Cc
