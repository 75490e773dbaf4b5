"""``tick(now)``: fire every due timer once, and start every due scheduled run once.

Exactly-once does not depend on a single scheduler process: a timer is marked fired in the
same transaction that applies its effect (and the instance's row version guards it), and a
scheduled run is claimed by a unique key in the same transaction that starts its instance.
Two ``serve`` processes sharing PostgreSQL may both try; one wins, the other gets a
conflict and moves on. A timer or slot that fell due while nothing ran is picked up by the
next tick, with its planned time and the actual time in the audit log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.errors import Conflict, NotFound, ShenpiError
from engine.model import ScheduleSpec
from engine.org import Actor
from engine.process import CompiledProcess
from engine.records import AuditRecord, Notice, Outcome, TimerRecord
from engine.runtime import Start, TimerFired, fire
from service import links
from service.workflow import Workflow, new_id

if TYPE_CHECKING:
    from notifiers.outbox import Outlet, Report

log = logging.getLogger("shenpi.tick")
SYSTEM = Actor("system", frozenset())
DEFAULT_ANCHOR = "2026-01-01T00:00:00+08:00"


@dataclass
class TickReport:
    fired: int = 0
    contested: int = 0  # another worker (or a person) changed the instance first
    failed: int = 0
    started: list[str] = field(default_factory=list)  # instance ids started by schedules
    reports: list[str] = field(default_factory=list)  # owner reports produced: name@slot

    def as_dict(self) -> dict[str, Any]:
        return {
            "fired": self.fired,
            "contested": self.contested,
            "failed": self.failed,
            "scheduled_starts": self.started,
            "scheduled_reports": self.reports,
        }


def tick(wf: Workflow, now: datetime, batch: int = 500) -> TickReport:
    report = TickReport()
    _fire_timers(wf, now, batch, report)
    _run_schedules(wf, now, report)
    _run_report_schedules(wf, now, report)
    return report


def _run_report_schedules(wf: Workflow, now: datetime, report: TickReport) -> None:
    """Owner reports with a ``schedule:`` (service.ownerreports), once per slot."""
    from service.ownerreports import run_scheduled_reports

    done = run_scheduled_reports(wf, now)
    report.reports.extend(done.produced)
    report.contested += done.contested
    report.failed += done.failed


SEND_LIMIT = 10_000  # deliveries one tick sends at most; the rest go with the next


@dataclass(frozen=True)
class TickResult:
    """A tick and the dispatch after it: what ``tick`` prints and ``serve`` logs."""

    report: TickReport
    sent: Report

    def as_dict(self) -> dict[str, Any]:
        return self.report.as_dict() | {
            "notices_sent": self.sent.sent,
            "deliveries_retry": self.sent.retried,
            "deliveries_held": self.sent.held,
            "deliveries_dead": self.sent.dead,
        }


def tick_and_send(wf: Workflow, now: datetime, outlet: Outlet, batch: int = 500) -> TickResult:
    """Fire what is due, then send the outbox. The notices already committed go out even
    if the tick failed half-way (the error is raised after the dispatch)."""
    from notifiers.outbox import dispatch

    try:
        report = tick(wf, now, batch=batch)
    finally:
        sent = dispatch(wf.store, wf.org, outlet, now, limit=SEND_LIMIT)
    return TickResult(report, sent)


def _fire_timers(wf: Workflow, now: datetime, batch: int, report: TickReport) -> None:
    """Fire due timers in batches, one commit per batch (one fsync for many timers).

    Every page read and every batch written holds at most ``batch`` timers, however large
    the backlog: a batch is one transaction, and on PostgreSQL each of its timers holds a
    lock slot (the advisory lock on its instance's audit chain) until the commit, so an
    unbounded batch runs the server out of them ("increase max_locks_per_transaction")
    and, on SQLite, holds the single write lock for seconds. The pages walk the backlog
    with a keyset cursor over ``(due_at, id)``, so timers that failed or lost a race stay
    behind the cursor instead of widening the next page.

    Each timer is still all-or-nothing on its own (``apply_batch`` applies each step
    completely or not at all). Two timers of one instance never share a batch: the second
    one's outcome must be computed from the snapshot the first one leaves, so the cursor
    stops in front of it and the next page starts there.
    """
    after: tuple[datetime, str] | None = None
    stuck: set[str] = set()  # tried in this tick but still pending: failed, or lost a race
    while True:
        page = wf.store.due_timers(now, limit=batch, after=after)
        if not page:
            return
        chosen: list[TimerRecord] = []
        seen: set[str] = set()
        deferred = False
        for timer in page:
            if timer.id in stuck:
                pass  # re-read after a deferral or a rewind: tried once, not again this tick
            elif timer.instance_id in seen:
                deferred = True
                continue
            else:
                seen.add(timer.instance_id)
                chosen.append(timer)
            if not deferred:
                after = (timer.due_at, timer.id)
        snapshots = wf.store.load_snapshots([t.instance_id for t in chosen])
        steps: list[tuple[Outcome, str]] = []
        linked: list[tuple[Outcome, str]] = []
        for timer in chosen:
            try:
                snapshot = snapshots.get(timer.instance_id)
                if snapshot is None:
                    raise NotFound("instance", timer.instance_id)
                proc = wf.process(snapshot.process, snapshot.version)
                out = fire(
                    proc, snapshot, TimerFired(timer), SYSTEM, {}, now, registers=wf.reader(proc)
                )
                # a step that starts, tells or cancels linked instances is written with
                # them, in a transaction of its own (service.links), not in the batch
                (linked if out.linked else steps).append((out, timer.id))
            except ShenpiError as exc:
                # a broken expression in an escalation must not stop every other timer
                stuck.add(timer.id)
                report.failed += 1
                log.error("timer %s on instance %s failed: %s", timer.id, timer.instance_id, exc)
        results: list[list[int] | Conflict] = list(wf.store.apply_batch(steps, wf.clock()))
        for out, timer_id in linked:
            try:
                links.apply(wf, out, now, fired_timer=timer_id)
                results.append([])
            except Conflict as exc:
                results.append(exc)
            except ShenpiError as exc:
                stuck.add(timer_id)
                report.failed += 1
                log.error("timer %s on instance %s failed: %s", timer_id, out.snapshot.id, exc)
                continue
            steps.append((out, timer_id))
        rewind = False
        for (outcome, timer_id), result in zip(steps, results, strict=True):
            if isinstance(result, Conflict):
                report.contested += 1
                stuck.add(timer_id)
                continue
            report.fired += 1
            # a step may set a timer that is already due (a deadline counted from a past
            # date); if it sorts behind the cursor, go back for it rather than wait a tick
            rewind = rewind or any(
                t.due_at <= now and (after is None or t.due_at <= after[0])
                for t in outcome.timers_set
            )
        if rewind:
            after = None


def _run_schedules(wf: Workflow, now: datetime, report: TickReport) -> None:
    for row in wf.store.list_definitions():
        try:
            proc = wf.process(row["process"], int(row["version"]))
        except ShenpiError as exc:
            # e.g. org.yaml lost a role the stored version names: the others go on
            report.failed += 1
            log.error("process %s v%s cannot be loaded: %s", row["process"], row["version"], exc)
            continue
        for sched in proc.spec.schedules:
            key = f"{proc.name}:{sched.name}"
            since = wf.store.last_schedule_run(key) or row["deployed_at"]
            try:
                slot = latest_slot(proc, sched, since, now)
                if slot is None:
                    continue
                try:
                    snapshot_id = _start_scheduled(
                        wf, proc, int(row["version"]), sched, key, slot, now
                    )
                except Conflict:
                    raise
                except (ShenpiError, ArithmeticError, ValueError) as exc:
                    # the slot cannot start (its user is away with no delegate, left the
                    # org, lost the role...): record it once and tell the owner, the
                    # next slot runs as usual
                    _fail_scheduled(wf, proc, sched, key, slot, now, str(exc))
                    report.failed += 1
                    log.error("schedule %s at %s did not start: %s", key, slot.isoformat(), exc)
                    continue
            except Conflict:
                report.contested += 1
                continue
            except (ShenpiError, ArithmeticError, ValueError) as exc:
                # one broken schedule must not stop the others, nor the timers
                report.failed += 1
                log.error("schedule %s failed: %s", key, exc)
                continue
            report.started.append(snapshot_id)


def _start_scheduled(
    wf: Workflow,
    proc: CompiledProcess,
    version: int,
    sched: ScheduleSpec,
    key: str,
    slot: datetime,
    now: datetime,
) -> str:
    """Start the slot's instance as the schedule's ``as:`` user, or, while that user is
    away, as their delegate on their behalf (the ``as:`` user stays the requester)."""
    actor, absent = wf.org.on_behalf(sched.requester)
    event = Start(new_id(), version, on_behalf_of=absent)
    outcome = fire(proc, None, event, actor, dict(sched.set), slot, registers=wf.reader(proc))
    first = outcome.audit[0]
    data = dict(first.data) | {
        "schedule": sched.name,
        "planned_at": slot.isoformat(),
        "fired_at": now.isoformat(),
    }
    outcome = replace(outcome, audit=(replace(first, data=data), *outcome.audit[1:]))
    links.apply(wf, outcome, slot, schedule_run=(key, slot))  # with its children, if any
    return outcome.snapshot.id


def owner_roles(proc: CompiledProcess) -> tuple[str, ...]:
    """Who answers for the process: its ``owner_role``, else whoever may start it by hand
    (they can open the missed instance themselves)."""
    spec = proc.spec
    return (spec.owner_role,) if spec.owner_role else tuple(spec.start.roles)


def _fail_scheduled(
    wf: Workflow,
    proc: CompiledProcess,
    sched: ScheduleSpec,
    key: str,
    slot: datetime,
    now: datetime,
    reason: str,
) -> None:
    """Claim the slot as failed, audit it (``schedule_failed``) and notify the owner role,
    in one transaction: recorded once across workers and not retried every tick."""
    recipients = tuple(f"role:{r}" for r in owner_roles(proc))
    data = {
        "schedule": sched.name,
        "as": sched.requester,
        "planned_at": slot.isoformat(),
        "fired_at": now.isoformat(),
        "reason": reason,
        "notified": list(recipients),
    }
    audit = AuditRecord(
        at=slot,
        actor=SYSTEM.user,
        action="schedule_failed",
        process=proc.name,
        instance_id=None,
        from_state=None,
        to_state=None,
        data=data,
    )
    notices = [Notice("schedule_failed", recipients, None, data={"process": proc.name} | data)]
    wf.store.fail_schedule_run(key, slot, audit, notices if recipients else [], wf.clock())


def latest_slot(
    proc: CompiledProcess, sched: ScheduleSpec, since: datetime, now: datetime
) -> datetime | None:
    """The latest slot in (since, now], or None. Missed older slots coalesce into it."""
    tz = proc.calendar.tz
    if sched.every is not None:
        anchor = datetime.fromisoformat(sched.anchor or DEFAULT_ANCHOR)
        amount = float(sched.every.amount)  # validated numeric for schedules
        period = timedelta(days=amount) if sched.every.unit == "days" else timedelta(hours=amount)
        if now < anchor:
            return None
        slot = anchor + period * int((now - anchor) / period)
        return slot if slot > since else None
    assert sched.cron is not None
    return latest_cron_slot(sched.cron, tz, since, now)


def latest_cron_slot(expr: str, tz: Any, since: datetime, now: datetime) -> datetime | None:
    """The latest slot of the five-field cron ``expr`` (in zone ``tz``) in (since, now]."""
    from engine.cron import cron_trigger

    trigger = cron_trigger(expr, tz)
    # look back in widening windows so a minutely cron after months of downtime costs a
    # few steps, not one per missed slot; the first window holding a slot holds the latest
    for back in (timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=32),
                 timedelta(days=367), now - since):  # fmt: skip
        start = max(since, now - back)
        best = None
        nxt = trigger.get_next_fire_time(None, start + timedelta(microseconds=1))
        while nxt is not None and nxt <= now:
            best = nxt
            nxt = trigger.get_next_fire_time(nxt, nxt + timedelta(seconds=1))
        if best is not None or start == since:
            return best
    return None
