"""Owner-defined reports (``report:`` files): the monthly service report of 篇1.10.

The key test seeds a month of complaints and reports (on time, late, one extended, two
handlers, two kinds, some still open) through the Workflow, runs the shipped
``monthly_service`` report through the CLI, and compares its counts with counts this test
computes itself from the audit log rows (never from the report code). The schedule tests
check that tick produces the report once per slot (two ticks, after downtime, two workers)
and that the notice reaches the service director, by e-mail through a real SMTP server.
"""

from __future__ import annotations

import email
import multiprocessing as mp
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from notifiers.config import load_channels_text
from notifiers.outbox import Outlet, dispatch
from service.timekeeper import tick
from service.workflow import Workflow
from storage.store import Store
from tests.cli.helpers import Shell
from tests.notifiers.channels.sinks import Mailbox, smtp_server

SH = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[2]
OCT = "--from 2026-10-01T00:00+08:00 --to 2026-11-01T00:00+08:00"
NOW = datetime(2026, 11, 3, 9, 0, tzinfo=SH)
# the same report in plain hours, so the test can time the cases without a calendar
HOURS = (
    (ROOT / "processes" / "reports" / "monthly_service.yaml")
    .read_text(encoding="utf-8")
    .replace("report: monthly_service", "report: service_hours")
    .replace("unit: working_days", "unit: hours")
    .split("schedule:")[0]
)


def at(day: int, hour: int = 10, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=SH)


# (received, kind, handler, days from receipt to the answer or None: still open, extended)
CASES: list[tuple[datetime, str, str | None, int | None, bool]] = [
    (at(9), "complaint", "li.qiang", 1, False),
    (at(12, 9), "complaint", "li.qiang", 15, False),  # late
    (at(13, 14), "report", "sun.li", 2, False),
    (at(14, 11), "report", "li.qiang", 3, True),  # extended by the director, on time
    (at(15), "complaint", "sun.li", 12, False),  # late
    (at(19, 16), "report", "sun.li", 11, False),  # late
    (at(20), "complaint", "sun.li", 2, False),
    (at(22), "complaint", None, None, False),  # never answered: overdue by 3 Nov
    (at(29), "report", None, None, False),  # open, not yet due on 3 Nov
]
OUTSIDE = [at(30, 23, month=9), at(1, 0, month=11) + timedelta(hours=1)]


CLOSED = """\
report: service_closed
title: Closed in the period
processes: [complaint]
period: closed
sections:
  - title: by month of closing
    group_by: [month, outcome]
    measures: [received, closed, open]
"""


def _procs(tmp_path: Path, with_hours: bool = True) -> Path:
    procs = tmp_path / "processes"
    (procs / "reports").mkdir(parents=True)
    shutil.copy(ROOT / "processes" / "org.yaml", procs / "org.yaml")
    shutil.copy(ROOT / "processes" / "complaint.yaml", procs / "complaint.yaml")
    shutil.copy(ROOT / "processes" / "reports" / "monthly_service.yaml", procs / "reports")
    if with_hours:
        (procs / "reports" / "service_hours.yaml").write_text(HOURS, encoding="utf-8")
        (procs / "reports" / "service_closed.yaml").write_text(CLOSED, encoding="utf-8")
    return procs


def _complaint(flow: Workflow, received: datetime, kind: str) -> tuple[str, str]:
    data = {"kind": kind, "customer": "客户", "contact": "138", "content": "投诉内容"}
    snap = flow.start("complaint", "wang.fang", data, now=received)
    accepted = flow.act(
        snap.tasks[0].id, "accept", "wang.fang", {"first_contact": "已联系"},
        now=received + timedelta(hours=1),
    )  # fmt: skip
    return snap.id, accepted.tasks[0].id


def _seed(flow: Workflow) -> None:
    for received, kind, handler, days, extended in CASES:
        _, task = _complaint(flow, received, kind)
        if days is None:
            continue
        moment = received + timedelta(hours=2)
        if extended:
            snap = flow.act(
                task, "request_extension", handler, {"extension_reason": "情况复杂"}, now=moment
            )
            snap = flow.act(
                snap.tasks[0].id, "approve_extension", "chen.jun", {"extension_days": 2},
                now=moment + timedelta(hours=1),
            )  # fmt: skip
            task = snap.tasks[0].id
        answered = received + timedelta(days=days)
        snap = flow.act(
            task, "resolve", handler, {"findings": "核实", "resolution": "已答复"}, now=answered
        )
        flow.act(
            snap.tasks[0].id, "close", "wang.fang", {"callback_result": "satisfied"},
            now=answered + timedelta(hours=1),
        )  # fmt: skip
    for received in OUTSIDE:
        _complaint(flow, received, "complaint")


@pytest.fixture
def month(db_url: str, tmp_path: Path) -> Iterator[tuple[Shell, str]]:
    procs = _procs(tmp_path)
    flow = Workflow.open(db_url, procs, create=True)
    flow.cache = None
    try:
        flow.deploy(now=datetime(2026, 9, 1, tzinfo=SH))
        _seed(flow)
        tick(flow, datetime(2026, 10, 31, 23, 0, tzinfo=SH))  # deadlines and escalations
    finally:
        flow.store.close()
    yield Shell(db_url, procs), db_url


# ------------------------------------------------------------------ the independent count


def audit_counts(db_url: str) -> dict[str, Any]:
    """What happened in October, from the audit rows alone."""
    store = Store.open(db_url)
    try:
        rows = store.query_audit(process="complaint")
    finally:
        store.close()
    by_instance: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["instance_id"]:
            by_instance[row["instance_id"]].append(row)
    since, until = at(1, 0), at(1, 0, month=11)
    facts = []
    for entries in by_instance.values():
        entries.sort(key=lambda e: e["seq"])
        start = entries[0]
        assert start["action"] == "start"
        if not since <= datetime.fromisoformat(str(start["at"])) < until:
            continue
        stop = [e for e in entries if "deadline_met" in e["data"]]
        resolved = [e for e in entries if e["action"] == "resolve"]
        answered = datetime.fromisoformat(str(stop[0]["at"])) if stop else None
        facts.append(
            {
                "kind": start["data"]["input"]["kind"],
                "handler": resolved[-1]["actor"] if resolved else "-",
                "met": stop[0]["data"]["deadline_met"] if stop else None,
                "extended": any("extended" in e["data"] for e in entries),
                "open": not any("outcome" in e["data"] for e in entries),
                "escalations": sum(1 for e in entries if e["action"] == "escalation"),
                "hours": (
                    (answered - datetime.fromisoformat(str(start["at"]))).total_seconds() / 3600
                    if answered
                    else None
                ),
            }
        )
    return {"facts": facts}


def tally(facts: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "received": len(facts),
        "on_time": sum(1 for f in facts if f["met"] is True),
        "late": sum(1 for f in facts if f["met"] is False),
        "extended": sum(1 for f in facts if f["extended"]),
        "open": sum(1 for f in facts if f["open"]),
    }


def rows_of(data: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return next(s["rows"] for s in data["sections"] if s["title"].startswith(prefix))


def test_monthly_service_report_counts_match_the_audit_log(month: tuple[Shell, str]) -> None:
    sh, db_url = month
    data = sh.js(f"report monthly_service {OCT}", now=NOW.isoformat())
    facts = audit_counts(db_url)["facts"]
    expected = tally(facts)
    # the seed really has every case the report must tell apart
    assert expected["received"] == len(CASES)
    assert expected["on_time"] >= 2 and expected["late"] >= 2 and expected["extended"] == 1
    (total,) = rows_of(data, "合计")
    for measure, value in expected.items():
        assert total[measure] == value, measure
    assert total["escalations"] == sum(f["escalations"] for f in facts) > 0
    assert total["overdue"] == 1  # the 22 Oct complaint, never answered
    by_kind = {r["kind"]: r for r in rows_of(data, "按类型")}
    for kind in ("complaint", "report"):
        mine = tally([f for f in facts if f["kind"] == kind])
        assert {k: by_kind[kind][k] for k in mine} == mine, kind
    by_handler = {r["handler"]: r for r in rows_of(data, "按处理人 (")}
    assert set(by_handler) == {"li.qiang", "sun.li", "-"}
    for handler, row in by_handler.items():
        mine = tally([f for f in facts if f["handler"] == handler])
        assert {k: row[k] for k in ("received", "on_time", "late", "extended")} == {
            k: mine[k] for k in ("received", "on_time", "late", "extended")
        }, handler
    both = Counter((r["handler"], r["kind"]) for r in rows_of(data, "按处理人和类型"))
    assert both == Counter({(f["handler"], f["kind"]) for f in facts})


def test_average_handling_time_is_receipt_to_answer(month: tuple[Shell, str]) -> None:
    sh, db_url = month
    data = sh.js(f"report service_hours {OCT}", now=NOW.isoformat())
    hours = [f["hours"] for f in audit_counts(db_url)["facts"] if f["hours"] is not None]
    (total,) = rows_of(data, "合计")
    mean = (Decimal(sum(hours)) / len(hours)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert Decimal(total["mean_time_h"]) == mean
    assert Decimal(total["p90_time_h"]) == Decimal(sorted(hours)[-1]).quantize(Decimal("0.01"))
    # the shipped report counts working days only: never more than the calendar days
    days = sh.js(f"report monthly_service {OCT}", now=NOW.isoformat())
    (wd,) = rows_of(days, "合计")
    assert Decimal(0) < Decimal(wd["mean_time_wd"]) <= mean / 24


def test_a_period_by_close_counts_what_closed_in_it(month: tuple[Shell, str]) -> None:
    sh, db_url = month
    data = sh.js(f"report service_closed {OCT}", now=NOW.isoformat())
    store = Store.open(db_url)
    try:
        finals = [
            e
            for e in store.query_audit(process="complaint", since=at(1, 0))
            if "outcome" in e["data"] and datetime.fromisoformat(str(e["at"])) < at(1, 0, 11)
        ]
    finally:
        store.close()
    assert len(finals) == sum(1 for c in CASES if c[3] is not None)
    (row,) = data["sections"][0]["rows"]
    assert (row["month"], row["outcome"]) == ("2026-10", "resolved")
    assert (row["received"], row["closed"], row["open"]) == (len(finals), len(finals), 0)


def test_html_csv_and_table_of_an_owner_report(month: tuple[Shell, str]) -> None:
    sh, _ = month
    html = sh.ok(f"report monthly_service {OCT} -o html", now=NOW.isoformat()).out
    assert html.startswith("<!DOCTYPE html>") or "<html" in html
    assert "<svg" in html and "li.qiang" in html and "<script" not in html
    csv_text = sh.ok(f"report monthly_service {OCT} -o csv", now=NOW.isoformat()).out
    assert csv_text.splitlines()[0].startswith("section,received,on_time,late")
    table = sh.ok(f"report monthly_service {OCT}", now=NOW.isoformat()).out
    assert "客户服务月报" in table and "HANDLER" in table


def test_listing_and_unknown_names(month: tuple[Shell, str]) -> None:
    sh, _ = month
    listed = {r["report"]: r for r in sh.js("reports")}
    assert listed["monthly_service"]["schedule"] == "0 8 1 * *"
    assert listed["monthly_service"]["send_to"] == "service_director"
    assert "summary" in listed and listed["summary"]["source"] == "built-in"
    assert {r["report"] for r in sh.js("report --list")} == set(listed)
    sh.refused("report no_such_report", "unknown report 'no_such_report'")
    sh.refused(f"report monthly_service {OCT} --process complaint", "--process")


# ------------------------------------------------------------------ bad YAML


@pytest.mark.parametrize(
    ("edit", "where", "message"),
    [
        (("  kind: [complaint, report]", "  kinds: [complaint, report]"), (13, 3), "no variable"),
        (("group_by: [handler]", "group_by: [handlr]"), (30, 16), "group_by takes"),
        (("send_to: [service_director]", "send_to: [nobody_role]"), (39, 13), "unknown role"),
        (("period: started ", "period: startd  "), (14, 1), "should be 'started' or 'closed'"),
        (("processes: [complaint]", "processes: [complaint]\ncolour: red"), (12, 1), "unknown key"),
        (("    chart: received", "    chart: p90_time"), (25, 5), "not one of this section"),
        (('cron: "0 8 1 * *"', 'cron: "0 8 1 *"'), (37, 3), "needs five fields"),
    ],
)
def test_bad_report_yaml_gives_line_and_column(
    sqlite_url: str, tmp_path: Path, edit: tuple[str, str], where: tuple[int, int], message: str
) -> None:
    procs = _procs(tmp_path, with_hours=False)
    path = procs / "reports" / "monthly_service.yaml"
    text = path.read_text(encoding="utf-8")
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")
    res = Shell(sqlite_url, procs)(["validate", str(procs)])
    assert res.code == 1 and "Traceback" not in res.err
    assert f"{path}:{where[0]}:{where[1]}: " in res.err + res.out, res.err
    assert message in res.err + res.out


# ------------------------------------------------------------------ schedule and delivery


def _report_runs(db_url: str) -> list[dict[str, Any]]:
    store = Store.open(db_url)
    try:
        return store.query_audit(action="report_run")
    finally:
        store.close()


def _notices(db_url: str) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    from storage.tables import outbox

    store = Store.open(db_url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(outbox).where(outbox.c.event == "report_ready"))
            return [dict(r._mapping) for r in rows]
    finally:
        store.close()


@pytest.fixture
def scheduled(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    procs = _procs(tmp_path, with_hours=False)
    flow = Workflow.open(db_url, procs, create=True)
    flow.cache = None
    try:
        flow.deploy(now=datetime(2026, 9, 1, tzinfo=SH))
        _seed(flow)
    finally:
        flow.store.close()
    yield db_url, procs


def test_the_report_goes_out_once_on_the_1st_for_the_month_before(
    scheduled: tuple[str, Path],
) -> None:
    db_url, procs = scheduled
    flow = Workflow(Store.open(db_url), procs)
    try:
        # deployed on 1 Sep: the 1 Oct slot (September's report) is due at the first tick
        assert tick(flow, at(31)).reports == ["monthly_service@2026-10-01T08:00:00+08:00"]
        assert tick(flow, at(1, 7, month=11)).reports == []  # before 08:00
        first = tick(flow, at(1, 8, month=11) + timedelta(seconds=30))
        second = tick(flow, at(1, 9, month=11))
        assert first.reports == ["monthly_service@2026-11-01T08:00:00+08:00"]
        assert second.reports == []
    finally:
        flow.store.close()
    september, run = _report_runs(db_url)
    assert september["data"]["period"] == "2026-09"
    assert run["data"]["from"] == "2026-10-01T00:00:00+08:00"
    assert run["data"]["to"] == "2026-11-01T00:00:00+08:00"
    assert run["actor"] == "system" and run["process"] == "report:monthly_service"
    _, notice = _notices(db_url)
    assert notice["recipients"] == ["role:service_director"]
    assert "<svg" in notice["data"]["report_html"]
    assert notice["data"]["summary"][0].startswith(f"received={len(CASES)}, ")


def test_after_downtime_the_latest_slot_goes_out_once(scheduled: tuple[str, Path]) -> None:
    db_url, procs = scheduled
    flow = Workflow(Store.open(db_url), procs)
    try:
        # down from 30 Oct to 3 Dec: the 1 Nov and 1 Dec slots coalesce into the latest
        done = tick(flow, datetime(2026, 12, 3, 10, 0, tzinfo=SH))
        assert done.reports == ["monthly_service@2026-12-01T08:00:00+08:00"]
        assert tick(flow, datetime(2026, 12, 3, 10, 5, tzinfo=SH)).reports == []
    finally:
        flow.store.close()
    (run,) = _report_runs(db_url)
    assert run["data"]["period"] == "2026-11"


def _worker(db_url: str, procs: str, moments: list[str], barrier: Any, out: Any) -> None:
    flow = Workflow(Store.open(db_url), Path(procs))
    produced = 0
    for moment in moments:
        barrier.wait(timeout=60)
        produced += len(tick(flow, datetime.fromisoformat(moment)).reports)
    out.put(produced)
    flow.store.close()


def test_two_workers_produce_each_slot_once(scheduled: tuple[str, Path]) -> None:
    db_url, procs = scheduled
    moments = ["2026-11-01T08:00:05+08:00", "2026-11-01T08:00:10+08:00", "2026-12-01T08:01+08:00"]
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(db_url, str(procs), moments, barrier, out))
        for _ in range(2)
    ]
    for w in workers:
        w.start()
    results = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert sum(results) == 2
    assert sorted(r["data"]["period"] for r in _report_runs(db_url)) == ["2026-10", "2026-11"]
    assert len(_notices(db_url)) == 2


def test_the_service_director_receives_it_by_email(scheduled: tuple[str, Path]) -> None:
    db_url, procs = scheduled
    mailbox = Mailbox()
    for controller in smtp_server(mailbox):
        text = (
            "channels:\n"
            f"  mail: {{type: email, host: 127.0.0.1, port: {controller.port}, mode: plain, "
            "sender: 'Shenpi <shenpi@example.cn>', timeout: 5}\n"
            "route:\n  report_ready: [mail]\n"
        )
        outlet = Outlet.of(load_channels_text(text, "channels.yaml", {}))
        flow = Workflow(Store.open(db_url), procs)
        try:
            tick(flow, at(1, 8, month=11) + timedelta(minutes=1))
            for _ in range(5):  # the seed's own notices go too, a batch at a time
                dispatch(flow.store, flow.org, outlet, at(1, 9, month=11), limit=1000)
        finally:
            flow.store.close()
    mails = [
        email.message_from_bytes(m.content)
        for m in mailbox.messages
        if m.rcpt_tos == ["chen.jun@example.com"]
    ]
    html = [
        part.get_payload(decode=True).decode()
        for m in mails
        for part in m.walk()
        if part.get_content_type() == "text/html"
    ]
    reports = [h for h in html if "<svg" in h]
    assert len(reports) == 1
    assert "客户服务月报" in reports[0] and "li.qiang" in reports[0] and "<script" not in reports[0]


def test_the_console_prints_the_headline_figures(scheduled: tuple[str, Path]) -> None:
    db_url, procs = scheduled
    res = Shell(db_url, procs).ok("tick", now="2026-11-01T08:00:30+08:00")
    out = res.err  # the console channel writes to stderr, tick's summary to stdout
    assert "scheduled_reports=monthly_service@2026-11-01T08:00:00+08:00" in res.out
    lines = [ln for ln in out.splitlines() if ln.startswith("notify chen.jun: 客户服务月报")]
    assert len(lines) == 1 and "2026-10" in lines[0]
    assert f"received={len(CASES)}, on_time=" in out
    assert "python run.py report monthly_service --from 2026-10-01T00:00:00+08:00" in out


# ------------------------------------------------------------------ 篇4: analysis on the 30th

LOST = {"customer": "王先生", "contact": "139", "salesperson": "liu.yang", "interest": "SUV"}


@pytest.fixture
def callbacks(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """November 2026: three lost customers, called back on time, late, and not at all."""
    procs = tmp_path / "processes"
    (procs / "reports").mkdir(parents=True)
    shutil.copy(ROOT / "processes" / "org.yaml", procs / "org.yaml")
    shutil.copy(ROOT / "processes" / "lost_customer_callback.yaml", procs)
    shutil.copy(ROOT / "processes" / "reports" / "lost_customer_monthly.yaml", procs / "reports")
    flow = Workflow.open(db_url, procs, create=True)
    flow.cache = None
    try:
        flow.deploy(now=datetime(2026, 10, 1, tzinfo=SH))
        for day, after in ((2, 1), (3, 9), (4, None)):  # on time, late, never
            snap = flow.start("lost_customer_callback", "liu.yang", LOST, now=at(day, month=11))
            if after is not None:
                flow.act(
                    snap.tasks[0].id, "record", "jiang.na",
                    {"callback_result": "not_buying", "feedback": "价格"},
                    now=at(day, month=11) + timedelta(days=after),
                )  # fmt: skip
    finally:
        flow.store.close()
    yield db_url, procs


def test_the_analysis_report_goes_to_the_showroom_manager_on_the_30th(
    callbacks: tuple[str, Path],
) -> None:
    db_url, procs = callbacks
    flow = Workflow(Store.open(db_url), procs)
    try:
        # the first tick catches the 30 Oct slot; 29 Nov has none; 30 Nov 09:00 has one
        assert tick(flow, at(29, 12, month=11)).reports == [
            "lost_customer_monthly@2026-10-30T09:00:00+08:00"
        ]
        assert tick(flow, at(30, 9, month=11)).reports == [
            "lost_customer_monthly@2026-11-30T09:00:00+08:00"
        ]
        # no slot on 31 Dec or 31 Jan other than the 30th; February's is its last day
        assert tick(flow, datetime(2027, 1, 31, 12, tzinfo=SH)).reports == [
            "lost_customer_monthly@2027-01-30T09:00:00+08:00"
        ]
        assert tick(flow, datetime(2027, 2, 27, 12, tzinfo=SH)).reports == []
        assert tick(flow, datetime(2027, 2, 28, 9, 1, tzinfo=SH)).reports == [
            "lost_customer_monthly@2027-02-28T09:00:00+08:00"
        ]
    finally:
        flow.store.close()
    november = next(r for r in _report_runs(db_url) if r["data"]["period"] == "2026-11")
    # month to date: 1 Nov up to the slot on the 30th
    assert november["data"]["from"] == "2026-11-01T00:00:00+08:00"
    assert november["data"]["to"] == "2026-11-30T09:00:00+08:00"
    assert november["data"]["sent_to"] == ["role:showroom_manager"]
    notice = next(n for n in _notices(db_url) if n["data"]["period"] == "2026-11")
    # received 3: called back on time 1, late 1, never called back and overdue 1
    assert notice["data"]["summary"][0].startswith(
        "received=3, on_time=1, late=1, on_time_pct=50.0, open=1, overdue=1"
    )


def test_a_withdrawn_case_is_neither_answered_on_time_nor_late(db_url: str, tmp_path: Path) -> None:
    """Withdrawing stops the deadline clock, but nobody answered: the case is received,
    closed, and counts neither as on time nor as late, nor in the handling time."""
    procs = _procs(tmp_path)
    flow = Workflow.open(db_url, procs, create=True)
    flow.cache = None
    try:
        flow.deploy(now=datetime(2026, 9, 1, tzinfo=SH))
        answered, task = _complaint(flow, at(5), "complaint")
        snap = flow.act(
            task, "resolve", "li.qiang", {"findings": "核实", "resolution": "已答复"},
            now=at(6),
        )  # fmt: skip
        assert snap.state == "callback"
        flow.withdraw(answered, "wang.fang", now=at(6, 12))  # answered first: on time
        late_one, _ = _complaint(flow, at(6), "complaint")
        flow.withdraw(late_one, "wang.fang", now=at(20))  # long past its 3 working days
        early_one, _ = _complaint(flow, at(7), "complaint")
        flow.withdraw(early_one, "wang.fang", now=at(7, 12))
    finally:
        flow.store.close()
    data = Shell(db_url, procs).js(f"report service_hours {OCT}", now=NOW.isoformat())
    (total,) = rows_of(data, "合计")
    assert (total["received"], total["on_time"], total["late"]) == (3, 1, 0)
    assert Decimal(total["mean_time_h"]) == Decimal(24)
    by_handler = {r["handler"]: r for r in rows_of(data, "按处理人 (")}
    assert (by_handler["-"]["on_time"], by_handler["-"]["late"]) == (0, 0)


LEAF = """
process: leaf
title: A child its parent cancels
start: {roles: [complaint_clerk], to: work}
states:
  work:
    task: {role: complaint_clerk, actions: {ok: {to: ok}}}
  ok: {final: true}
"""
PARENT = """
process: parent
title: Starts a leaf and cancels it when it ends
start: {roles: [complaint_clerk], to: work}
states:
  work:
    spawn: [{process: leaf, as: requester, on_parent_end: cancel}]
    task: {role: complaint_clerk, actions: {done: {to: done}}}
  done: {final: true}
"""
LEAF_CLOSED = """\
report: leaf_closed
title: Leaves closed in the period
processes: [leaf]
period: closed
sections:
  - title: by outcome
    group_by: [outcome]
    measures: [received, closed]
"""


def test_a_period_by_close_counts_a_child_cancelled_with_its_parent(
    db_url: str, tmp_path: Path
) -> None:
    """A cancelled child has ended (``closed`` counts it in a report by start); the report
    by close must list it in the period it was cancelled, as it lists a withdrawn one."""
    procs = tmp_path / "processes"
    procs.mkdir()
    shutil.copy(ROOT / "processes" / "org.yaml", procs / "org.yaml")
    (procs / "leaf.yaml").write_text(LEAF, encoding="utf-8")
    (procs / "parent.yaml").write_text(PARENT, encoding="utf-8")
    (procs / "leaf_closed.yaml").write_text(LEAF_CLOSED, encoding="utf-8")
    flow = Workflow.open(db_url, procs, create=True)
    flow.cache = None
    try:
        flow.deploy(now=datetime(2026, 9, 1, tzinfo=SH))
        parent = flow.start("parent", "wang.fang", {}, now=at(5))
        flow.withdraw(parent.id, "wang.fang", now=at(6))
        assert flow.store.load_snapshot(f"{parent.id}.1").status == "cancelled"
    finally:
        flow.store.close()
    data = Shell(db_url, procs).js(f"report leaf_closed {OCT}", now=NOW.isoformat())
    rows = {r["outcome"]: r for r in data["sections"][0]["rows"]}
    assert rows["cancelled"]["closed"] == 1
