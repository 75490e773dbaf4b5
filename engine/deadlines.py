"""Deadlines inside one step: a task's due time and timers, and the instance's SLA clock.

Which timers a deadline sets (due, reminders, escalation levels), when the instance clock
starts, pauses, resumes, stops and is extended. The clock itself is a value
(``engine.sla``); this module decides when a step changes it and what that re-plans.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine.errors import ActionNotAllowed, ExpressionError
from engine.model import DeadlineSpec, Duration, ExtendSpec, Reminder
from engine.process import MAX_DURATION, SLA
from engine.records import TaskRecord, TaskStatus, TimerKind, TimerRecord
from engine.sla import Extension, SlaClock

if TYPE_CHECKING:
    from engine.steps import Step

SYSTEM = "system"  # the actor of what the engine does by itself (engine.steps.SYSTEM)


def amount(step: Step, dur: Duration, key: str) -> int | Decimal:
    """The length of ``dur``; an expression is checked like a literal would be at load."""
    raw = dur.amount
    if isinstance(raw, str):
        expr = step.process.expr(f"{key}.amount")
        raw = expr.evaluate(step.ctx())
        if (
            isinstance(raw, bool)
            or not isinstance(raw, int | Decimal)
            or not 0 <= raw <= MAX_DURATION
        ):
            raise ExpressionError(
                expr.source,
                f"a duration must be a number from 0 to {MAX_DURATION}, got {raw!r}",
            )
    if dur.unit != "hours" and raw != int(raw):
        raise ExpressionError(str(dur.amount), f"{dur.unit} must be whole, got {raw}")
    return raw


def later(step: Step, start: datetime, dur: Duration, key: str, at: time | None = None) -> datetime:
    """``dur`` after ``start``; with ``at``, at that local time of the period's last day."""
    length = amount(step, dur, key)
    return step.process.calendar.add(start, length, dur.unit, at)  # type: ignore[arg-type]


def reminder_time(step: Step, rem: Reminder, due: datetime, key: str) -> datetime:
    """When ``rem`` fires for a deadline due at ``due``.

    Elapsed (``hours``/``days`` without ``at``): that long before ``due``, as always. On a
    day (``working_days``, or any ``at``): the deadline's day is the local day it falls on
    (24:00 counts as the day before, as in counting); the reminder's day is N working days
    (``working_days``) or N calendar days (``days``) before it, and the time is ``at``, or
    without ``at`` the deadline's own time of day (24:00 again being the end of that day).
    """
    length = amount(step, rem.before, key)
    if not rem.on_a_day:
        delta = (
            timedelta(hours=float(length))
            if rem.before.unit == "hours"
            else timedelta(days=int(length))
        )
        return due - delta
    cal = step.process.calendar
    deadline_day = cal.event_day(due)
    if rem.before.unit == "working_days":
        day = cal.working_days_before(deadline_day, int(length))
    else:
        day = deadline_day - timedelta(days=int(length))
    if rem.at is not None:
        return cal.at_clock(day, rem.at)
    local = due.astimezone(cal.tz)
    if local.time() == time(0):  # due at 24:00: the reminder is at 24:00 of its day too
        return cal.at_clock(day + timedelta(days=1), time(0))
    return cal.at_clock(day, local.time())


def moment(step: Step, expr: Any) -> datetime:
    """A deadline's starting event: a datetime, or a date (taken at noon, local time)."""
    value = expr.evaluate(step.ctx())
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(12), tzinfo=step.process.calendar.tz)
    raise ExpressionError(expr.source, f"'from' must give a date or time, got {value!r}")


def plan(
    step: Step,
    dl: DeadlineSpec,
    start: datetime,
    state: str,
    prefix: str,
    key: str,
    task_id: str | None,
    due: datetime | None = None,
    only_future: bool = False,
) -> datetime:
    """Set the deadline, reminder and escalation timers of ``dl``; return the due time.

    ``only_future``: leave out timers already behind ``now`` (a resumed clock must not
    fire again what it fired before its pause).
    """
    if due is None and dl.from_ is not None:
        start = moment(step, step.process.expr(f"{key}.from"))
    due = due or later(step, start, dl, key, dl.at)
    instance = step.base.id
    base = {"title": dl.title, "state": state, "due_at": due.isoformat()}
    timers = [TimerRecord(f"{prefix}:due", instance, TimerKind.deadline, due, state, task_id, base)]
    for i, rem in enumerate(dl.reminders):
        at = reminder_time(step, rem, due, f"{key}.rem.{i}")
        if rem.on_a_day and at >= due:
            # what load could not foresee (amounts from expressions, a deadline in hours)
            step.log(
                {
                    "actor": SYSTEM,
                    "action": "reminder_not_set",
                    "from_state": step.state,
                    "to_state": step.state,
                    "task_id": task_id,
                    "data": {
                        "timer": f"{prefix}:remind:{i}",
                        "state": state,
                        "remind_at": at.isoformat(),
                        "due_at": due.isoformat(),
                        "reason": "the reminder would not come before the deadline",
                    },
                }
            )
        elif at > step.now:
            timers.append(
                TimerRecord(
                    f"{prefix}:remind:{i}", instance, TimerKind.reminder, at, state, task_id, base
                )
            )
    for i, esc in enumerate(dl.escalations):
        at = due if esc.after is None else later(step, due, esc.after, f"{key}.esc.{i}", esc.at)
        at = max(at, due)  # `after: {working_days: 0}, at: ...` is never before the deadline
        timers.append(
            TimerRecord(
                f"{prefix}:escalate:{i + 1}",
                instance,
                TimerKind.escalation,
                at,
                state,
                task_id,
                base | {"level": i + 1},
            )
        )
    step.set_timers(t for t in timers if not only_future or t.due_at > step.now)
    return due


def task_due(step: Step, sname: str, task_id: str) -> datetime | None:
    """A new task's due time: its state's own deadline (timers set), else the running
    instance deadline, else none."""
    dl = step.process.spec.states[sname].deadline
    if dl is not None:
        return plan(step, dl, step.now, sname, task_id, f"{sname}.deadline", task_id)
    sla = step.sla
    return sla.due_at if sla is not None and sla.running else None


# --------------------------------------------------------------------- the SLA clock


def start_clock(step: Step, record: dict[str, Any]) -> None:
    """Start the instance deadline, if the process has one."""
    dl = step.process.spec.deadline
    if dl is None:
        return
    begin = moment(step, step.process.expr("sla.from")) if dl.from_ is not None else step.now
    length = amount(step, dl, "sla")
    due = step.process.calendar.add(begin, length, dl.unit, dl.at)  # type: ignore[arg-type]
    plan(step, dl, begin, SLA, f"{step.base.id}:sla0", "sla", None, due)
    step.sla = SlaClock(
        started_at=step.now, counted_from=begin, amount=Decimal(length), unit=dl.unit, due_at=due
    )
    record.setdefault("data", {})["due_at"] = due.isoformat()


def on_enter(step: Step, target: str, record: dict[str, Any]) -> None:
    """Stop, pause or resume the clock as ``target`` says."""
    dl = step.process.spec.deadline
    sla = step.sla
    if dl is None or sla is None or sla.stopped_at is not None:
        return
    if target in dl.until or step.process.spec.states[target].final:
        step.sla = sla.stop(step.now)
        step.cancel_timers(SLA)
        record.setdefault("data", {})["deadline_met"] = step.sla.met
    elif target in dl.paused_in and sla.paused_at is None:
        step.sla = sla.pause(step.now)
        step.cancel_timers(SLA)
    elif target not in dl.paused_in and sla.paused_at is not None:
        # the clock stood still while paused: the deadline moves by the pause's length;
        # timers already behind us (an overdue notice fired before the pause) stay fired
        due = sla.resumed_due(step.now)
        _replan(step, sla.resume(step.now), due, only_future=True)


def extend(
    step: Step, spec: ExtendSpec, record: dict[str, Any], task: TaskRecord, action: str
) -> None:
    """An approved extension moves the instance deadline, within its caps."""
    sla = step.sla
    if sla is None or sla.stopped_at is not None:
        raise ActionNotAllowed(task.id, action, "there is no running deadline to extend")
    done = sla.extensions
    if len(done) >= spec.max_times:
        raise ActionNotAllowed(
            task.id,
            action,
            f"the deadline was already extended {len(done)} time(s); at most "
            f"{spec.max_times} allowed",
        )
    more = Decimal(amount(step, spec.by, f"{task.state}.{action}.extend"))
    total = sum(e.amount for e in done) + more
    if spec.max_total is not None and total > Decimal(spec.max_total):
        raise ActionNotAllowed(
            task.id,
            action,
            f"extensions may add at most {spec.max_total} {spec.by.unit} in total; "
            f"this would make {total}",
        )
    if sla.paused_at is not None:
        raise ActionNotAllowed(task.id, action, "the deadline is paused; extend it after resuming")
    at = step.process.spec.deadline.at if step.process.spec.deadline is not None else None
    new = sla.extended_due(step.process.calendar, more, spec.by.unit, at)
    _replan(step, sla.extended(Extension(more, spec.by.unit, step.now, step.actor)), new)
    record.setdefault("data", {})["extended"] = {
        "from": sla.due_at.isoformat(),
        "to": new.isoformat(),
        "amount": str(more),
        "unit": spec.by.unit,
    }


def _replan(step: Step, sla: SlaClock, due: datetime, only_future: bool = False) -> None:
    """Move the clock ``sla`` to ``due``: new timers, and the tasks that follow it."""
    dl = step.process.spec.deadline
    assert dl is not None
    step.sla = sla = sla.replanned(due)
    step.cancel_timers(SLA)
    prefix = f"{step.base.id}:sla{sla.generation}"
    plan(step, dl, step.now, SLA, prefix, "sla", None, due, only_future=only_future)
    for task in step.tasks():
        state_dl = step.process.spec.states[task.state].deadline
        if task.status == TaskStatus.open and state_dl is None and task.due_at != due:
            step.update_task(replace(task, due_at=due))
