"""The one exceptions module of Shenpi.

Every error a user can cause is a ``ShenpiError``: the CLI turns it into one line on
stderr and exit status 1, the HTTP API (api/problems.py) into a problem+json 4xx. Anything else
escaping is a bug. Messages say what went wrong *and* what to do about it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class ShenpiError(Exception):
    """Base of every error Shenpi raises on purpose."""


# --------------------------------------------------------------------------- definitions


@dataclass(frozen=True, order=True)
class Problem:
    """One problem found in a definition file, with where it is."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class DefinitionError(ShenpiError):
    """A YAML definition (process, org directory, calendar) is invalid.

    Carries *all* problems found, so a process owner fixes them in one round.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(set(problems)))
        super().__init__("\n".join(str(p) for p in self.problems))


class ExpressionError(ShenpiError):
    """A guard or computed value failed to evaluate, or gave a value of the wrong kind."""

    def __init__(self, expression: str, reason: str, where: str = "") -> None:
        """``where`` is the ``file:line:col`` of the expression when known (at run time), so
        the owner can find the expression that refused a step."""
        self.expression = expression
        self.reason = reason
        self.where = where
        message = f"expression {expression!r}: {reason}"
        super().__init__(f"{where}: {message}" if where else message)


class ExpressionTooBig(ExpressionError):
    """An expression would build a value (text, list, number) over the limits, or do too much work.

    Raised before the value is built, so nothing is allocated and nothing changes.
    """


# --------------------------------------------------------------------------- runtime


class WorkflowError(ShenpiError):
    """A runtime request was refused; nothing was changed."""


class NotFound(WorkflowError):
    """An id names nothing that exists."""

    def __init__(self, kind: str, ident: object, hint: str = "") -> None:
        self.kind = kind
        self.ident = ident
        msg = f"unknown {kind} {ident!r}"
        super().__init__(f"{msg}; {hint}" if hint else msg)


class StartRefused(WorkflowError):
    """The process's ``start.when`` guard refused this start (e.g. the customer is not in
    a register the process reads); nothing was stored."""

    def __init__(self, process: str, reason: str) -> None:
        self.process = process
        self.reason = reason
        super().__init__(f"cannot start {process}: {reason}")


class ActionNotAllowed(WorkflowError):
    """The actor may not take this action on this task now."""

    def __init__(self, task: str, action: str, reason: str) -> None:
        self.task = task
        self.action = action
        self.reason = reason
        super().__init__(f"action {action!r} on task {task}: {reason}")


class InstanceOperationNotAllowed(ActionNotAllowed):
    """The actor may not do this to the whole instance now (withdraw, cc).

    An ``ActionNotAllowed`` so that the refusal is recorded as ``denied`` like any other;
    ``task`` holds the instance id.
    """

    def __init__(self, instance: str, action: str, reason: str) -> None:
        self.task = instance
        self.action = action
        self.reason = reason
        WorkflowError.__init__(self, f"{action} of instance {instance}: {reason}")


class InstanceClosed(InstanceOperationNotAllowed):
    """The instance is no longer active (completed or withdrawn), possibly a moment ago.

    Like :class:`TaskClosed`: still a refusal recorded as ``denied``, but the HTTP face
    answers it 409, since the caller was not wrong to try; ``status`` and ``outcome`` say
    how it ended.
    """

    def __init__(self, instance: str, action: str, status: str, outcome: str | None) -> None:
        self.status = status
        self.outcome = outcome
        decided = f" ({outcome})" if outcome else ""
        super().__init__(
            instance, action, f"it is already {status}{decided}; only an active request can be"
        )


class TooSoon(ActionNotAllowed):
    """Refused only because it was done too recently (a second reminder within the hour).

    An ``ActionNotAllowed`` so it is recorded as ``denied`` like any refusal; it also says
    when to try again (``retry_after``, whole seconds), which the HTTP face answers as 429
    with ``Retry-After``, so a client need not parse the sentence.
    """

    def __init__(self, task: str, action: str, reason: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(task, action, reason)


class TaskClosed(ActionNotAllowed):
    """The task was already decided (or cancelled), possibly a moment ago by someone else.

    A subclass so that everything that treats it as a refused action still does; the HTTP
    face answers it 409 with who decided, not 403: the caller was not wrong to try.
    """

    def __init__(
        self, task: str, action: str, status: str, decision: str | None, decided_by: str | None
    ) -> None:
        self.status = status
        self.decision = decision
        self.decided_by = decided_by
        by = f" by {decided_by}" if decided_by else ""
        super().__init__(
            task,
            action,
            f"the task is already {status} ({decision or 'no decision'}{by}); nothing was changed",
        )


class InvalidData(WorkflowError):
    """A value given for a variable is missing, unknown or of the wrong type."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class Conflict(WorkflowError):
    """Someone else changed the instance first (optimistic lock lost)."""

    def __init__(self, instance_id: str, detail: str = "") -> None:
        self.instance_id = instance_id
        msg = (
            f"instance {instance_id} was changed by someone else at the same moment"
            f"{': ' + detail if detail else ''}; reload it with 'show' and try again if "
            "the action still applies"
        )
        super().__init__(msg)


class RegisterConflict(Conflict):
    """A register row a step writes changed after the version the step read it at: the
    step's decision rests on a stale row, so it is refused (a lost update) and changes
    nothing; try the step again."""

    def __init__(self, instance_id: str, register: str, key: str, read: int, now: int) -> None:
        self.instance_id = instance_id
        self.register = register
        self.key = key
        WorkflowError.__init__(
            self,
            f"register {register!r} row {key!r} was changed (version {now}) after this step "
            f"read it (version {read}); nothing was saved, try the step again",
        )


class AuditKeyError(ShenpiError):
    """The audit key named by the environment is missing, unreadable or too weak."""


class LinkKeyError(ShenpiError):
    """The action-link key or public URL named by the environment is missing or unusable."""


class BadLink(ShenpiError):
    """An action-link token this server did not sign as it is (changed, cut short, forged)."""


class OutOfOrder(WorkflowError):
    """A step dated before the instance's last recorded step: history cannot run backwards.

    Not an ``ActionNotAllowed``: it is not recorded as ``denied``, since that entry would
    itself be dated before what it follows.
    """

    def __init__(self, instance_id: str, at: str, last: str) -> None:
        self.instance_id = instance_id
        super().__init__(
            f"time {at} is earlier than the last recorded step of instance {instance_id} "
            f"({last}); history cannot run backwards: act as of {last} or later"
        )


class NoDatabase(WorkflowError):
    """A command that only reads was pointed at a database that does not exist yet."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(
            f"no database at {where}; run 'python run.py deploy' first (it creates one), "
            "or check --db"
        )


# --------------------------------------------------------------------------- API callers


class NotAuthenticated(ShenpiError):
    """No API token, or one that is unknown, malformed, expired or revoked."""


class NotPermitted(WorkflowError):
    """The caller is known but may not use this operation (a scope or an operator view)."""
