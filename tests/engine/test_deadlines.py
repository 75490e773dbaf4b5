"""Deadlines, reminders, escalations, extensions and pauses, in the pure engine.

Every instant is passed in: ``Run`` plays the part of storage and ``tick`` (it keeps the
pending timers, cancels those of a state that was left, and fires the due ones in the
order storage gives them: due time, then id). The processes are the shipped YAML files,
so the worked examples of POLICIES.md are checked on what process owners run.
Expected due times are worked out by hand from the calendar (see the comments), never
taken from the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.catalog import Catalog, load_catalog
from engine.errors import ActionNotAllowed, InvalidData
from engine.org import Actor, Org
from engine.process import SLA, CompiledProcess
from engine.records import AuditRecord, Notice, Outcome, Snapshot, TimerRecord
from engine.runtime import Act, Start, TimerFired, fire
from service.timekeeper import latest_slot

from .conftest import build

SH = ZoneInfo("Asia/Shanghai")
PROCESSES = Path(__file__).resolve().parents[2] / "processes"
SYSTEM = Actor("system", frozenset())


def at(text: str) -> datetime:
    """An instant in Asia/Shanghai, written 'YYYY-MM-DD HH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=SH)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog([PROCESSES])


@dataclass
class Run:
    """One instance driven through the engine, with storage's part played in memory."""

    proc: CompiledProcess
    org: Org
    snap: Snapshot | None = None
    timers: dict[str, TimerRecord] = field(default_factory=dict)
    audit: list[AuditRecord] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    last: Outcome | None = None

    def apply(self, out: Outcome) -> Outcome:
        for state in out.timers_cancel_states:
            self.timers = {k: t for k, t in self.timers.items() if t.state != state}
        for timer in out.timers_set:
            self.timers.setdefault(timer.id, timer)
        self.snap = replace(out.snapshot, row_version=(out.expected_row_version or 0) + 1)
        self.audit.extend(out.audit)
        self.notices.extend(out.notices)
        self.last = out
        return out

    def start(self, user: str, now: datetime, **data: Any) -> Outcome:
        return self.apply(fire(self.proc, None, Start("i1"), self.org.actor(user), data, now))

    def act(
        self, user: str, action: str, now: datetime, comment: str | None = None, **data: Any
    ) -> Outcome:
        assert self.snap is not None and self.snap.tasks, "no open task"
        event = Act(self.snap.tasks[0].id, action, comment)
        return self.apply(fire(self.proc, self.snap, event, self.org.actor(user), data, now))

    def advance(self, to: datetime) -> list[TimerRecord]:
        """Fire every timer due by ``to``, each at its planned time (a running ``serve``)."""
        fired: list[TimerRecord] = []
        while True:
            due = sorted(
                (t for t in self.timers.values() if t.due_at <= to), key=lambda t: (t.due_at, t.id)
            )
            if not due:
                return fired
            timer = due[0]
            del self.timers[timer.id]
            self.apply(fire(self.proc, self.snap, TimerFired(timer), SYSTEM, {}, timer.due_at))
            fired.append(timer)

    @property
    def task(self):
        assert self.snap is not None
        return self.snap.tasks[0]

    @property
    def sla(self) -> dict[str, Any]:
        assert self.snap is not None
        return self.snap.meta["sla"]

    def pending(self, state: str | None = None) -> list[tuple[str, datetime]]:
        return sorted(
            (t.kind, t.due_at) for t in self.timers.values() if state is None or t.state == state
        )


def run_of(catalog: Catalog, name: str) -> Run:
    return Run(catalog.processes[name], catalog.org)


COMPLAINT = {"customer": "刘女士", "contact": "13800000000", "content": "停电三天无人处理"}
PETITION = {
    "petitioner": "张三",
    "contact": "13900000000",
    "subject": "拆迁补偿",
    "content": "补偿未到位",
}


def complaint(catalog: Catalog, kind: str, received: datetime) -> Run:
    run = run_of(catalog, "complaint")
    run.start("wang.fang", received, kind=kind, **COMPLAINT)
    return run


def petition(catalog: Catalog, registered: datetime) -> Run:
    run = run_of(catalog, "petition")
    run.start("xie.hong", registered, **PETITION)
    return run


# ---------------------------------------------------------------- complaint: 3 / 5 working days


@pytest.mark.parametrize(
    ("kind", "received", "due"),
    [
        # the worked example: 1-7 Oct off, Sat 10 Oct a working day -> 8, 9, 10 Oct
        ("complaint", "2026-09-30 10:00", "2026-10-11 00:00"),
        # reports: 8, 9, 10, 12, 13 Oct
        ("report", "2026-09-30 10:00", "2026-10-14 00:00"),
        # 00:00 on 1 Oct is 24:00 on 30 Sep: counted from the same day
        ("complaint", "2026-10-01 00:00", "2026-10-11 00:00"),
        # received during the holiday: the first working day after it is day 1
        ("complaint", "2026-10-03 15:00", "2026-10-11 00:00"),
        # Spring Festival 2026: 15-23 Feb off, Sat 14 and Sat 28 Feb working days
        ("complaint", "2026-02-13 10:00", "2026-02-26 00:00"),  # 14, 24, 25 Feb
        ("report", "2026-02-13 10:00", "2026-02-28 00:00"),  # 14, 24, 25, 26, 27 Feb
        ("complaint", "2026-02-14 09:00", "2026-02-27 00:00"),  # 24, 25, 26 Feb
        ("report", "2026-02-17 10:00", "2026-03-01 00:00"),  # 24, 25, 26, 27, Sat 28 Feb
    ],
)
def test_complaint_answer_deadline_counts_working_days(
    catalog: Catalog, kind: str, received: str, due: str
) -> None:
    run = complaint(catalog, kind, at(received))
    assert run.sla["due_at"] == at(due).isoformat()
    assert run.task.due_at == at(due)  # the clerk's task shows the instance deadline
    assert ("deadline", at(due)) in run.pending(SLA)


def test_complaint_timers_reminder_escalation_and_reassignment(catalog: Catalog) -> None:
    run = complaint(catalog, "complaint", at("2026-09-30 10:00"))
    assert run.pending(SLA) == [
        ("deadline", at("2026-10-11 00:00")),
        ("escalation", at("2026-10-11 00:00")),  # level 1: notify the director
        ("escalation", at("2026-10-13 00:00")),  # level 2: one working day later (Mon 12)
        ("reminder", at("2026-10-10 00:00")),  # 24 hours before: the start of the last day
    ]
    assert [t.kind for t in run.advance(at("2026-10-10 23:59"))] == ["reminder"]
    assert run.notices[-1].event == "reminder"
    assert run.notices[-1].recipients == ("role:complaint_clerk",)

    fired = run.advance(at("2026-10-11 00:00"))
    assert [t.kind for t in fired] == ["deadline", "escalation"]
    overdue, escalated = run.notices[-2:]
    assert overdue.event == "overdue" and overdue.recipients == ("role:complaint_clerk",)
    assert escalated.event == "escalated"
    assert set(escalated.recipients) == {"role:service_director", "role:complaint_clerk"}
    assert run.task.roles == ("complaint_clerk",)  # level 1 only notifies

    run.advance(at("2026-10-13 00:00"))
    assert run.task.roles == ("service_director",)  # level 2: the director takes it over
    assert run.audit[-1].action == "escalation"
    assert run.audit[-1].data["reassigned_to"] == "service_director"
    assert run.audit[-1].data["planned_at"] == at("2026-10-13 00:00").isoformat()
    with pytest.raises(ActionNotAllowed, match="needs role service_director"):
        run.act("zhao.lei", "accept", at("2026-10-13 09:00"), first_contact="已联系")
    run.act("chen.jun", "accept", at("2026-10-13 09:00"), first_contact="所长亲自联系")
    assert run.snap.state == "handling" and run.task.roles == ("complaint_handler",)
    assert run.pending(SLA) == []  # every level has fired; nothing fires twice


def test_answering_stops_the_clock_and_cancels_its_timers(catalog: Catalog) -> None:
    run = complaint(catalog, "report", at("2026-09-30 10:00"))
    run.act("zhao.lei", "accept", at("2026-10-08 09:00"), first_contact="已电话联系")
    assert run.task.due_at == at("2026-10-14 00:00")
    out = run.act(
        "li.qiang", "resolve", at("2026-10-13 16:00"), findings="属实", resolution="已修复"
    )
    assert run.snap.state == "callback"
    assert SLA in out.timers_cancel_states and "handling" in out.timers_cancel_states
    assert run.sla["met"] is True and run.sla["stopped_at"] == at("2026-10-13 16:00").isoformat()
    assert out.audit[-1].data["deadline_met"] is True
    assert run.task.due_at is None  # the callback has no deadline of its own
    assert run.pending() == []
    assert run.advance(at("2026-12-31 00:00")) == []
    assert [n.event for n in run.notices].count("reminder") == 0


def test_late_answer_is_recorded_as_missed(catalog: Catalog) -> None:
    run = complaint(catalog, "complaint", at("2026-09-30 10:00"))
    run.act("zhao.lei", "accept", at("2026-10-08 09:00"), first_contact="已电话联系")
    run.advance(at("2026-10-11 08:00"))
    out = run.act("li.qiang", "resolve", at("2026-10-11 09:00"), findings="x", resolution="y")
    assert out.audit[-1].data["deadline_met"] is False and run.sla["met"] is False


def test_a_timer_left_behind_by_a_finished_step_is_skipped(catalog: Catalog) -> None:
    run = complaint(catalog, "complaint", at("2026-09-30 10:00"))
    reminder = next(t for t in run.timers.values() if t.kind == "reminder")
    run.act("zhao.lei", "not_accepted", at("2026-09-30 11:00"), "不属本所", not_accepted_reason="x")
    assert run.snap.status == "completed"
    out = fire(run.proc, run.snap, TimerFired(reminder), SYSTEM, {}, at("2026-10-10 00:00"))
    assert [a.action for a in out.audit] == ["reminder_skipped"] and out.notices == ()


# ---------------------------------------------------------------- complaint: pause and extension


def test_waiting_on_the_customer_pauses_the_clock(catalog: Catalog) -> None:
    run = complaint(catalog, "complaint", at("2026-09-30 10:00"))  # due 11 Oct 00:00
    run.act("zhao.lei", "accept", at("2026-10-08 09:00"), first_contact="已电话联系")
    out = run.act(
        "li.qiang", "wait_for_customer", at("2026-10-09 12:00"), waiting_reason="待补充电表照片"
    )
    assert SLA in out.timers_cancel_states and run.pending(SLA) == []
    assert run.sla["paused_at"] == at("2026-10-09 12:00").isoformat()
    assert run.task.due_at is None  # no deadline runs while we wait
    assert run.advance(at("2026-10-12 08:59")) == []  # the old deadline passes silently

    run.act("li.qiang", "customer_replied", at("2026-10-12 09:00"), customer_reply="已补充")
    # 36 hours were left when the clock stopped (9 Oct 12:00 -> 11 Oct 00:00)
    due = at("2026-10-12 09:00") + timedelta(hours=36)
    assert run.sla["due_at"] == due.isoformat() and run.task.due_at == due
    assert run.sla["pauses"] == [
        [at("2026-10-09 12:00").isoformat(), at("2026-10-12 09:00").isoformat()]
    ]
    assert ("reminder", due - timedelta(hours=24)) in run.pending(SLA)
    assert ("deadline", due) in run.pending(SLA)


def extension_ready(catalog: Catalog) -> Run:
    run = complaint(catalog, "complaint", at("2026-09-30 10:00"))  # due 11 Oct 00:00
    run.act("zhao.lei", "accept", at("2026-10-08 09:00"), first_contact="已电话联系")
    return run


def request(run: Run, now: str, reason: str = "涉及线路改造，需供电局配合") -> None:
    run.act("li.qiang", "request_extension", at(now), extension_reason=reason)


def test_director_extends_a_complex_complaint_twice_within_the_cap(catalog: Catalog) -> None:
    run = extension_ready(catalog)
    request(run, "2026-10-09 10:00")
    assert run.snap.state == "extension_review" and run.task.roles == ("service_director",)
    out = run.act("chen.jun", "approve_extension", at("2026-10-09 11:00"), extension_days=2)
    # 2 working days after Sat 10 Oct: Mon 12 and Tue 13 Oct
    assert run.sla["due_at"] == at("2026-10-14 00:00").isoformat()
    assert out.audit[0].data["extended"] == {
        "from": at("2026-10-11 00:00").isoformat(),
        "to": at("2026-10-14 00:00").isoformat(),
        "amount": "2",
        "unit": "working_days",
    }
    assert run.snap.state == "handling" and run.task.due_at == at("2026-10-14 00:00")
    assert ("reminder", at("2026-10-13 00:00")) in run.pending(SLA)
    assert all(due > at("2026-10-11 00:00") for _, due in run.pending(SLA))  # old ones gone
    variables = run.snap.variables
    assert (variables["extensions_granted"], variables["extended_days"]) == (1, 2)
    assert variables["extension_log"] == "2个工作日: 涉及线路改造，需供电局配合"
    assert "extension_reason" not in variables  # the next request must give its own

    with pytest.raises(InvalidData, match="extension_reason: required"):
        run.act("li.qiang", "request_extension", at("2026-10-12 10:00"))
    request(run, "2026-10-12 10:00", "客户要求现场勘查")
    with pytest.raises(InvalidData, match="extension_days: required"):
        run.act("chen.jun", "approve_extension", at("2026-10-12 11:00"))
    run.act("chen.jun", "approve_extension", at("2026-10-12 11:00"), extension_days=3)
    assert run.sla["due_at"] == at("2026-10-17 00:00").isoformat()  # 14, 15, 16 Oct
    assert run.snap.variables["extension_log"].endswith("; 3个工作日: 客户要求现场勘查")

    with pytest.raises(ActionNotAllowed, match="no extension left"):
        request(run, "2026-10-13 10:00")


def test_extensions_may_not_exceed_five_working_days_in_all(catalog: Catalog) -> None:
    run = extension_ready(catalog)
    request(run, "2026-10-09 10:00")
    run.act("chen.jun", "approve_extension", at("2026-10-09 11:00"), extension_days=4)
    assert run.sla["due_at"] == at("2026-10-16 00:00").isoformat()  # 12, 13, 14, 15 Oct
    request(run, "2026-10-12 10:00")
    before = run.snap
    with pytest.raises(
        ActionNotAllowed, match="at most 5 working_days in total; this would make 6"
    ):
        run.act("chen.jun", "approve_extension", at("2026-10-12 11:00"), extension_days=2)
    assert run.snap == before  # refused: nothing changed
    run.act("chen.jun", "refuse_extension", at("2026-10-12 11:00"), "按期办结")
    assert run.snap.state == "handling" and run.sla["due_at"] == at("2026-10-16 00:00").isoformat()


def test_the_engine_refuses_a_third_extension_by_the_director(catalog: Catalog) -> None:
    run = extension_ready(catalog)
    run.act("li.qiang", "escalate", at("2026-10-08 10:00"), escalation_reason="涉及赔偿")
    for day, n in (("2026-10-08 11:00", 1), ("2026-10-09 11:00", 1)):
        run.act("chen.jun", "extend_deadline", at(day), extension_reason="复杂", extension_days=n)
    assert run.sla["due_at"] == at("2026-10-14 00:00").isoformat()  # 12 and 13 Oct
    with pytest.raises(ActionNotAllowed, match=r"already extended 2 time\(s\); at most 2 allowed"):
        run.act(
            "chen.jun",
            "extend_deadline",
            at("2026-10-12 11:00"),
            extension_reason="再延",
            extension_days=1,
        )


def test_no_extension_once_the_answer_was_given(catalog: Catalog) -> None:
    run = extension_ready(catalog)
    run.act("li.qiang", "resolve", at("2026-10-09 10:00"), findings="x", resolution="y")
    run.act(
        "zhao.lei", "reopen", at("2026-10-09 15:00"), "客户不满意", callback_result="unsatisfied"
    )
    request(run, "2026-10-10 09:00")
    with pytest.raises(ActionNotAllowed, match="there is no running deadline to extend"):
        run.act("chen.jun", "approve_extension", at("2026-10-10 10:00"), extension_days=1)


# ---------------------------------------------------------------- petition: 60 days, once +30


@pytest.mark.parametrize(
    ("registered", "due"),
    [
        # day 60 is 16 Feb 2026, New Year's Eve in the Spring Festival: moves to Tue 24 Feb
        ("2025-12-18 10:00", "2026-02-25 00:00"),
        # day 60 is Sun 29 Nov: moves to Mon 30 Nov
        ("2026-09-30 10:00", "2026-12-01 00:00"),
        # day 60 is Sat 28 Feb, a declared working day: it stays
        ("2025-12-30 10:00", "2026-03-01 00:00"),
        # day 60 is Sun 4 Oct, in National Day: moves past 5-7 Oct to Thu 8 Oct
        ("2026-08-05 10:00", "2026-10-09 00:00"),
        # day 60 is Sat 10 Oct, a declared working day: it stays
        ("2026-08-11 10:00", "2026-10-11 00:00"),
    ],
)
def test_petition_sixty_days(catalog: Catalog, registered: str, due: str) -> None:
    run = petition(catalog, at(registered))
    assert run.sla["due_at"] == at(due).isoformat()
    assert run.task.due_at == at(due)


def test_petition_reminders_and_escalation_levels(catalog: Catalog) -> None:
    run = petition(catalog, at("2026-09-30 10:00"))  # due 1 Dec 00:00
    assert run.pending(SLA) == [
        ("deadline", at("2026-12-01 00:00")),
        ("escalation", at("2026-12-01 00:00")),
        ("escalation", at("2026-12-11 00:00")),  # 10 days after Mon 30 Nov: Thu 10 Dec
        ("reminder", at("2026-11-21 00:00")),  # 10 days before
        ("reminder", at("2026-11-28 00:00")),  # 3 days before
    ]
    run.advance(at("2026-12-11 00:00"))
    escalations = [n for n in run.notices if n.event == "escalated"]
    assert [set(n.recipients) for n in escalations] == [
        {"role:petition_leader", "role:petition_clerk"},
        {"role:petition_leader", "role:review_office", "role:petition_clerk"},
    ]
    assert [n.event for n in run.notices].count("reminder") == 2


def petition_in_handling(catalog: Catalog, registered: str) -> Run:
    run = petition(catalog, at(registered))
    run.act("xie.hong", "assign", at(registered) + timedelta(hours=1), handling_unit="城建科")
    return run


def extend_petition(run: Run, now: datetime, days: int) -> Outcome:
    run.act("han.bo", "request_extension", now, extension_reason="涉及多个部门")
    return run.act("luo.gang", "approve_extension", now + timedelta(hours=1), extension_days=days)


def test_petition_is_extended_once_by_thirty_days(catalog: Catalog) -> None:
    run = petition_in_handling(catalog, "2026-06-01 10:00")  # day 60: Fri 31 Jul
    assert run.sla["due_at"] == at("2026-08-01 00:00").isoformat()
    extend_petition(run, at("2026-07-20 10:00"), 30)
    # 90 days: Sun 30 Aug, moved to Mon 31 Aug
    assert run.sla["due_at"] == at("2026-09-01 00:00").isoformat()
    assert run.snap.state == "telling_extension"  # the petitioner is told why
    assert run.task.due_at == at("2026-09-01 00:00")
    run.act(
        "xie.hong", "petitioner_told", at("2026-07-21 09:00"), extension_notice="电话告知延期理由"
    )
    assert run.snap.state == "handling"
    with pytest.raises(ActionNotAllowed, match="already extended once"):
        run.act("han.bo", "request_extension", at("2026-08-20 10:00"), extension_reason="再延")


def test_the_engine_refuses_a_second_petition_extension(catalog: Catalog) -> None:
    """Whatever the YAML guards let through, ExtendSpec holds: once, at most 30 days."""
    run = petition_in_handling(catalog, "2026-06-01 10:00")
    run.act("han.bo", "request_extension", at("2026-07-20 10:00"), extension_reason="复杂")
    pending = run.snap  # the leader's extension task is open
    run.act("luo.gang", "approve_extension", at("2026-07-20 11:00"), extension_days=10)
    # the same request again, as if a second request had got through: same task, same state,
    # but the instance clock already carries one extension
    forged = replace(pending, meta=run.snap.meta, variables=pending.variables)
    with pytest.raises(ActionNotAllowed, match=r"already extended 1 time\(s\); at most 1 allowed"):
        fire(
            run.proc,
            forged,
            Act(pending.tasks[0].id, "approve_extension"),
            catalog.org.actor("luo.gang"),
            {"extension_days": 5},
            at("2026-07-21 11:00"),
        )


def test_a_petition_extension_beyond_thirty_days_is_refused(catalog: Catalog) -> None:
    run = petition_in_handling(catalog, "2026-06-01 10:00")
    with pytest.raises(ActionNotAllowed, match="at most 30 days in total; this would make 31"):
        extend_petition(run, at("2026-07-20 10:00"), 31)
    assert run.snap.state == "extension_review" and run.sla["extensions"] == []
    with pytest.raises(ActionNotAllowed, match="a comment is required"):
        run.act("luo.gang", "refuse_extension", at("2026-07-20 12:00"))
    run.act("luo.gang", "refuse_extension", at("2026-07-20 12:00"), "按期办结")
    assert run.sla["due_at"] == at("2026-08-01 00:00").isoformat()
    assert "extension_reason" not in run.snap.variables  # a new request gives a new reason


def test_sixty_plus_thirty_days_never_pass_day_ninety(catalog: Catalog) -> None:
    run = petition_in_handling(catalog, "2026-09-30 10:00")  # day 60 Sun 29 Nov -> Mon 30 Nov
    extend_petition(run, at("2026-11-20 10:00"), 30)
    # day 90 after 30 Sep is Tue 29 Dec, a working day
    assert run.sla["due_at"] == at("2026-12-30 00:00").isoformat()


def test_review_window_closes_the_petition_when_it_lapses(catalog: Catalog) -> None:
    run = petition_in_handling(catalog, "2026-09-30 10:00")
    run.act(
        "han.bo", "report_result", at("2026-10-20 10:00"), findings="属实", proposed_answer="补发"
    )
    run.act("luo.gang", "approve_answer", at("2026-10-21 10:00"))
    out = run.act(
        "xie.hong",
        "answer",
        at("2026-10-22 10:00"),
        answer="已补发",
        answer_method="written",
        answer_delivered_on="2026-10-24",
    )
    assert out.audit[-1].data["deadline_met"] is True and run.pending(SLA) == []
    assert run.snap.state == "review_window" and run.task.roles == ("review_office",)
    # 30 days after Sat 24 Oct (the day the answer arrived): Mon 23 Nov
    assert run.task.due_at == at("2026-11-24 00:00")
    run.advance(at("2026-11-23 23:59"))
    assert run.snap.state == "review_window"
    run.advance(at("2026-11-24 00:00"))
    assert (run.snap.state, run.snap.status, run.snap.outcome) == (
        "closed",
        "completed",
        "answered",
    )
    assert run.last is not None and run.last.changed[0].decision == "escalated"
    assert run.pending() == []


def test_a_review_request_stops_the_window_and_starts_the_review_period(catalog: Catalog) -> None:
    run = petition(catalog, at("2026-09-30 10:00"))
    run.act(
        "xie.hong",
        "answer_directly",
        at("2026-09-30 11:00"),
        answer="政策解答",
        answer_method="phone",
        answer_delivered_on="2026-09-30",
    )
    assert run.task.due_at == at("2026-10-31 00:00")  # 30 days after 30 Sep: Fri 30 Oct
    out = run.act(
        "du.wen",
        "request_review",
        at("2026-10-20 10:00"),
        review_request="不服答复",
        review_requested_on="2026-10-19",
    )
    assert "review_window" in out.timers_cancel_states
    assert run.pending("review_window") == []
    # 30 days after 19 Oct: Wed 18 Nov
    assert run.task.due_at == at("2026-11-19 00:00")
    assert run.pending("review") == [
        ("deadline", at("2026-11-19 00:00")),
        ("reminder", at("2026-11-14 00:00")),
    ]
    run.act("du.wen", "uphold", at("2026-11-10 10:00"), review_opinion="维持")
    assert (run.snap.status, run.snap.outcome) == ("completed", "review_upheld")
    assert run.pending() == []


# ---------------------------------------------------------------- scheduled processes


def test_director_reception_every_monday(catalog: Catalog) -> None:
    proc = catalog.processes["director_reception"]
    [sched] = proc.spec.schedules
    slot = latest_slot(proc, sched, at("2026-10-05 08:00"), at("2026-10-19 07:59"))
    assert slot == at("2026-10-12 08:00")
    assert latest_slot(proc, sched, slot, at("2026-10-19 07:59")) is None  # once per slot
    run = Run(proc, catalog.org)
    run.start(sched.requester, slot, **sched.set)
    assert run.snap.variables["reception_day"] == "2026-10-12"
    assert run.task.roles == ("service_director",)
    assert run.task.due_at == at("2026-10-13 00:00")  # the end of that Monday
    assert run.pending("reception") == [
        ("deadline", at("2026-10-13 00:00")),
        ("reminder", at("2026-10-12 18:00")),
    ]


def test_a_late_started_reception_is_still_due_that_day(catalog: Catalog) -> None:
    run = run_of(catalog, "director_reception")
    run.start("chen.jun", at("2026-10-12 15:30"))
    assert run.task.due_at == at("2026-10-13 00:00")
    assert run.pending("reception") == [
        ("deadline", at("2026-10-13 00:00")),
        ("reminder", at("2026-10-12 18:00")),
    ]


@pytest.mark.parametrize(
    ("slot", "due"),
    [
        ("2026-10-08 09:00", "2026-10-10 00:00"),  # Thu: due by the end of Fri 9 Oct
        ("2026-10-03 09:00", "2026-10-09 00:00"),  # in National Day: Thu 8 Oct
        ("2026-02-15 09:00", "2026-02-25 00:00"),  # in Spring Festival: Tue 24 Feb
        ("2026-02-10 09:00", "2026-02-12 00:00"),  # Tue: Wed 11 Feb
    ],
)
def test_suggestion_box_slots_and_due(catalog: Catalog, slot: str, due: str) -> None:
    proc = catalog.processes["suggestion_box"]
    [sched] = proc.spec.schedules
    # slots every 5 days from 1 Jan 09:00
    assert latest_slot(
        proc, sched, at(slot) - timedelta(days=5), at(slot) + timedelta(days=4)
    ) == at(slot)
    run = Run(proc, catalog.org)
    run.start(sched.requester, at(slot), **sched.set)
    assert run.task.roles == ("suggestion_box_keeper",) and run.task.due_at == at(due)
    assert run.pending("opening") == [("deadline", at(due)), ("escalation", at(due))]
    run.advance(at(due))
    assert run.notices[-1].event == "escalated"
    assert set(run.notices[-1].recipients) == {
        "role:service_director",
        "role:suggestion_box_keeper",
    }


# ---------------------------------------------------------------- residents' visits: 3 days


@pytest.mark.parametrize(
    ("visited", "due"),
    [
        ("2026-10-13 10:00", "2026-10-17 00:00"),  # Tue -> Fri 16 Oct
        ("2026-10-15 10:00", "2026-10-20 00:00"),  # Thu -> Sun 18 Oct -> Mon 19 Oct
        ("2026-09-29 10:00", "2026-10-09 00:00"),  # Tue -> Fri 2 Oct (holiday) -> Thu 8 Oct
        ("2026-10-07 10:00", "2026-10-11 00:00"),  # Wed -> Sat 10 Oct, a working day
        ("2026-02-11 16:00", "2026-02-15 00:00"),  # Wed -> Sat 14 Feb, a working day
        ("2026-02-12 16:00", "2026-02-25 00:00"),  # Thu -> Sun 15 Feb (holiday) -> Tue 24 Feb
        ("2026-02-13 16:00", "2026-02-25 00:00"),  # Fri -> Mon 16 Feb (holiday) -> Tue 24 Feb
    ],
)
def test_residents_are_answered_within_three_days(catalog: Catalog, visited: str, due: str) -> None:
    run = run_of(catalog, "residents_visit")
    run.start("lu.bin", at(visited), resident="王大爷", contact="139", content="夜间施工噪音")
    assert run.task.due_at == at(due) and run.task.roles == ("site_manager",)
    assert run.pending(SLA) == [
        ("deadline", at(due)),
        ("escalation", at(due)),
        ("reminder", at(due) - timedelta(hours=24)),
    ]


# ---------------------------------------------------------------- engine rules on small processes

REMIND = """
process: remind
title: Remind
variables:
  hours: {type: integer}
start: {require: [hours], to: work}
states:
  work:
    deadline:
      hours: hours
      reminders:
        - before: {hours: 2}
        - before: {days: 1}
      escalations:
        - after: {hours: 1}
          goto: late
    task:
      role: clerk
      actions:
        done: {to: ok}
  late:
    task:
      role: vp
      actions:
        done: {to: ok}
  ok: {final: true}
"""


def test_reminders_already_past_are_not_set(org: Org) -> None:
    run = Run(build(REMIND, org), org)
    run.start("ann", at("2026-03-02 10:00"), hours=5)  # due 15:00: a day before is past
    assert run.pending("work") == [
        ("deadline", at("2026-03-02 15:00")),
        ("escalation", at("2026-03-02 16:00")),
        ("reminder", at("2026-03-02 13:00")),
    ]


def test_escalation_goto_moves_the_instance_and_cancels_the_task(org: Org) -> None:
    run = Run(build(REMIND, org), org)
    run.start("ann", at("2026-03-02 10:00"), hours=5)
    first = run.task
    fired = run.advance(at("2026-03-02 16:00"))
    assert [t.kind for t in fired] == ["reminder", "deadline", "escalation"]
    assert run.snap.state == "late" and run.task.roles == ("vp",) and run.task.id != first.id
    cancelled = next(t for t in run.last.changed if t.id == first.id)
    assert (cancelled.status, cancelled.decision) == ("cancelled", "escalated")
    assert "work" in run.last.timers_cancel_states and run.pending() == []
    assert [(a.action, a.from_state, a.to_state) for a in run.last.audit] == [
        ("escalation", "work", "late")
    ]


def test_leaving_a_state_cancels_its_timers(org: Org) -> None:
    run = Run(build(REMIND, org), org)
    run.start("ann", at("2026-03-02 10:00"), hours=48)
    assert len(run.pending("work")) == 4
    out = run.act("ann", "done", at("2026-03-02 11:00"))
    assert out.timers_cancel_states == ("work",) and run.pending() == []
    assert run.advance(at("2026-03-10 00:00")) == []
