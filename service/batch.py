"""Acting on many tasks at once (批量审批): one transaction per task, one result per task.

Why not one transaction for the batch: the tasks belong to different instances, each with
its own optimistic lock and audit chain; one refused task (decided meanwhile, four-eyes, a
typo in an id) must not undo the others, and a reader must see exactly which went through.
The CLI's ``act T1 T2 ... ACTION`` and any HTTP face call :func:`act_many` and print its
rows; nothing here prints or exits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.errors import InvalidData, ShenpiError
from engine.values import check_input_names, check_name, check_text

if TYPE_CHECKING:
    from service.workflow import Workflow

__all__ = ["MAX_BATCH", "TaskResult", "act_many", "all_ok"]

# A batch is typed or pasted by a person; a script with more can run several.
MAX_BATCH = 1000


@dataclass(frozen=True)
class TaskResult:
    """What became of one task of a batch: the instance after the step, or why not."""

    task_id: str
    action: str
    ok: bool
    error: str | None = None
    instance_id: str | None = None
    state: str | None = None
    status: str | None = None
    outcome: str | None = None
    open_tasks: tuple[str, ...] = field(default_factory=tuple)
    # the refusal itself, for a face that classifies it (HTTP: the problem type and status
    # the single-task endpoint would answer); not part of the public shape
    refusal: ShenpiError | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The public shape (``act ... -o json`` with several tasks, one object per task)."""
        return {
            "task_id": self.task_id,
            "action": self.action,
            "ok": self.ok,
            "error": self.error,
            "instance_id": self.instance_id,
            "state": self.state,
            "status": self.status,
            "outcome": self.outcome,
            "open_tasks": list(self.open_tasks),
        }


def check_batch(task_ids: Sequence[str]) -> None:
    """Refuse a batch that cannot be meant (empty, too long, an id twice) before any step:
    the second of two equal ids would only be refused as already decided."""
    if not task_ids:
        raise InvalidData("task ids", "name at least one task")
    if len(task_ids) > MAX_BATCH:
        raise InvalidData("task ids", f"at most {MAX_BATCH} tasks per batch, not {len(task_ids)}")
    seen: set[str] = set()
    for task_id in task_ids:
        check_name("task id", task_id)
        if task_id in seen:
            raise InvalidData("task ids", f"{task_id} is named twice; name each task once")
        seen.add(task_id)


def act_many(
    wf: Workflow,
    task_ids: Sequence[str],
    action: str,
    user: str,
    data: Mapping[str, Any] | None = None,
    comment: str | None = None,
    now: datetime | None = None,
) -> list[TaskResult]:
    """Take ``action`` on each task in order, each in a transaction of its own.

    What is wrong with the batch as a whole (no task, an id twice, an unknown user, an
    action name or comment no backend can store) is raised before any task is touched,
    so nothing changes. A refusal of one task (unknown id, four-eyes, a guard, decided
    meanwhile, a database error) becomes that task's row and the next task is tried.
    ``now`` None means the real clock, read per task as :meth:`Workflow.act` does.
    """
    check_batch(task_ids)
    check_name("action", action)
    check_name("user", user)
    if comment is not None:
        check_text("comment", comment)
    check_input_names(data or {})
    wf.actor(user)  # an unknown or inactive user is refused once, not once per task
    results: list[TaskResult] = []
    for task_id in task_ids:
        try:
            snapshot = wf.act(task_id, action, user, dict(data or {}), comment, now)
        except ShenpiError as exc:
            results.append(TaskResult(task_id, action, ok=False, error=str(exc), refusal=exc))
            continue
        except Exception as exc:
            reason = _database_error(exc)
            if reason is None:
                raise
            results.append(TaskResult(task_id, action, ok=False, error=reason))
            continue
        results.append(
            TaskResult(
                task_id,
                action,
                ok=True,
                instance_id=snapshot.id,
                state=snapshot.state,
                status=str(snapshot.status),
                outcome=snapshot.outcome,
                open_tasks=tuple(t.id for t in snapshot.tasks),
            )
        )
    return results


def all_ok(results: Sequence[TaskResult]) -> bool:
    return all(r.ok for r in results)


def _database_error(exc: Exception) -> str | None:
    """One line for a database error (the connection dropped mid-batch), None for others:
    a bug must still surface as one, not as a refused task."""
    import sqlalchemy.exc

    if not isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
        return None
    orig = getattr(exc, "orig", None)
    first = str(orig if orig else exc).strip().splitlines()
    return f"database: {first[0] if first else type(exc).__name__}"
