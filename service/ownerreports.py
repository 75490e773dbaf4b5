"""Owner-defined reports: load ``report:`` files, run them over the store, deliver them.

A report reads instances (by start or close in a period) in index order, a batch at a
time; for each batch it looks up only what its measures need (the handler's and the
escalations' audit entries by the instances' chains, the deadline state's tasks) and adds
the batch to per-group tallies. Only the handling times of the groups are held, never the
period's rows. The result is a :class:`service.reports.Report`, so the CLI prints, exports
and draws it exactly like a built-in one.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.catalog import yaml_files
from engine.errors import DefinitionError, NotFound, Problem, WorkflowError
from engine.reportspec import (
    BUILT_IN_NAMES,
    FieldKey,
    ProcessFacts,
    ReportSpec,
    StateDeadline,
    VariableKey,
    check_report,
    load_report,
    process_facts,
)
from engine.yamlsafe import load_file
from service.reports import CENT, Report, Section, median, percentile, rate

if TYPE_CHECKING:
    from engine.process import CompiledProcess
    from engine.registers import RegisterSpec
    from storage.store import Store

BATCH = 500
HOUR = Decimal(3600)
TIME_MEASURES = ("mean_time", "median_time", "p90_time")
TIME_UNIT_LABEL = {"hours": "h", "days": "d", "working_hours": "wh", "working_days": "wd"}


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class OwnerReport:
    spec: ReportSpec
    file: str
    # processes it reads that are not deployed: it cannot run (nor its schedule fire) yet
    missing: tuple[str, ...] = ()


def report_files(folder: Path) -> list[Path]:
    """The YAML files below ``folder`` whose first key is ``report``."""
    out = []
    for path in yaml_files([folder]):
        try:
            with path.open(encoding="utf-8") as fh:
                head = "".join(fh.readline() for _ in range(40))
        except OSError:
            continue
        if any(line.startswith("report:") for line in head.splitlines()):
            out.append(path)
    return out


def load_owner_reports(
    folder: Path,
    processes: dict[str, ProcessFacts],
    roles: set[str],
    registers: dict[str, RegisterSpec] | None = None,
) -> dict[str, OwnerReport]:
    """Every ``report:`` file of the folder, checked; one DefinitionError lists all problems."""
    problems: list[Problem] = []
    found: dict[str, OwnerReport] = {}
    for path in report_files(folder):
        try:
            doc = load_file(path)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        if not (isinstance(doc.data, dict) and next(iter(doc.data), None) == "report"):
            continue
        try:
            spec = load_report(doc)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        missing = tuple(p for p in spec.processes if p not in processes)
        if not missing:
            problems.extend(check_report(spec, doc, processes, roles, registers))
        if spec.report in found:
            problems.append(
                doc.problem(
                    ("report",),
                    f"report {spec.report!r} is also defined in {found[spec.report].file}",
                )
            )
        found[spec.report] = OwnerReport(spec, str(path), missing)
    if problems:
        raise DefinitionError(problems)
    return found


# --------------------------------------------------------------------------- running


@dataclass
class Group:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    times: list[Decimal] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    spec: ReportSpec
    procs: dict[str, CompiledProcess]
    since: datetime
    until: datetime
    now: datetime
    zone: tzinfo


def _instances(store: Store, ctx: Context) -> Iterator[list[dict[str, Any]]]:
    """The report's instances in batches, each once."""
    if ctx.spec.period == "started":
        batch: list[dict[str, Any]] = []
        for row in store.reports.instances_in(ctx.since, ctx.until, ctx.spec.processes):
            row["_anchor"] = row["created_at"]
            batch.append(row)
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
        return
    for name in ctx.spec.processes:
        finals = [n for n, s in ctx.procs[name].spec.states.items() if s.final]
        closed: dict[str, datetime] = {}
        for entry in store.reports.closing_entries(ctx.since, ctx.until, name, finals):
            if entry["instance_id"] in closed:
                continue
            closed[entry["instance_id"]] = entry["at"]
            if len(closed) >= BATCH:
                yield _closed_batch(store, closed)
                closed = {}
        if closed:
            yield _closed_batch(store, closed)


def _closed_batch(store: Store, closed: dict[str, datetime]) -> list[dict[str, Any]]:
    rows = store.reports.instances_by_id(list(closed))
    for row in rows:
        row["_anchor"] = closed[row["id"]]
    return [r for r in rows if r["status"] != "active"]  # reopened since: not closed


def _admitted(spec: ReportSpec, row: dict[str, Any]) -> bool:
    variables = row["variables"] or {}
    for name in spec.where:
        allowed = spec.allowed(name)
        if allowed is not None and variables.get(name) not in allowed:
            return False
    return True


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def working_seconds(proc: CompiledProcess, start: datetime, end: datetime) -> Decimal:
    """Seconds of ``[start, end)`` that fall on working days of the process calendar."""
    if end <= start:
        return Decimal(0)
    cal = proc.calendar
    zone = cal.tz
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    total = Decimal(0)
    day: date = local_start.date()
    while day <= local_end.date():
        day_start = datetime.combine(day, time(), tzinfo=zone)
        day_end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
        lo, hi = max(day_start, local_start), min(day_end, local_end)
        if hi > lo and cal.is_working_day(day):
            total += Decimal(int((hi - lo).total_seconds()))
        day += timedelta(days=1)
    return total


def _withdrawn_unanswered(row: dict[str, Any], sla: dict[str, Any]) -> bool:
    """Withdrawn or cancelled while its clock still ran: that step stopped the clock (it
    is the instance's last step, so the clock stopped when the row was last updated), but
    nobody answered. A case answered before it was withdrawn keeps its verdict."""
    return (
        row["status"] in ("withdrawn", "cancelled")
        and _moment(sla.get("stopped_at")) == row["updated_at"]
    )


def _handling_time(ctx: Context, proc: CompiledProcess, row: dict[str, Any]) -> Decimal | None:
    sla = (row["meta"] or {}).get("sla") or {}
    end: datetime | None = None
    if ctx.spec.time.to == "answered":
        if sla and _withdrawn_unanswered(row, sla):
            return None
        end = _moment(sla.get("stopped_at"))
    if end is None and row["status"] != "active":
        end = row["updated_at"]
    if end is None:
        return None
    start = row["created_at"]
    unit = ctx.spec.time.unit
    if unit.startswith("working"):
        seconds = working_seconds(proc, start, end)
    else:
        seconds = Decimal(int((end - start).total_seconds()))
    per = HOUR if unit.endswith("hours") else HOUR * 24
    return (seconds / per).quantize(CENT, ROUND_HALF_UP)


def _deadline_facts(
    ctx: Context, row: dict[str, Any], state_tasks: list[dict[str, Any]]
) -> tuple[str | None, bool, bool]:
    """(on_time | late | None, overdue now, extended)."""
    if isinstance(ctx.spec.deadline, StateDeadline):
        done = [t for t in state_tasks if t["status"] == "done" and t["due_at"] is not None]
        open_ = [t for t in state_tasks if t["status"] == "open"]
        overdue = any(t["due_at"] is not None and t["due_at"] < ctx.now for t in open_)
        if done:
            last = max(done, key=lambda t: t["closed_at"])
            return ("on_time" if last["closed_at"] <= last["due_at"] else "late"), overdue, False
        return None, overdue, False
    sla = (row["meta"] or {}).get("sla")
    if not sla:
        return None, False, False
    extended = bool(sla.get("extensions"))
    if _withdrawn_unanswered(row, sla):
        return None, False, extended
    if sla.get("stopped_at"):
        return ("on_time" if sla.get("met") else "late"), False, extended
    due = _moment(sla.get("due_at"))
    overdue = sla.get("paused_at") is None and due is not None and due < ctx.now
    return None, overdue, extended


def _key_value(ctx: Context, key: Any, row: dict[str, Any], handler: str | None) -> str:
    if isinstance(key, VariableKey):
        value = (row["variables"] or {}).get(key.variable)
        return "-" if value is None else str(value)
    if key == "handler":
        return handler or "-"
    if key == "month":
        return row["_anchor"].astimezone(ctx.zone).strftime("%Y-%m")
    if key == "outcome":
        return row["outcome"] or row["status"]
    return str(row[key])


def _key_name(key: Any) -> str:
    return key.variable if isinstance(key, VariableKey) else str(key)


def run_owner_report(
    store: Store,
    report: OwnerReport,
    procs: dict[str, CompiledProcess],
    since: datetime,
    until: datetime,
    now: datetime,
    zone: tzinfo,
    registers: dict[str, RegisterSpec] | None = None,
) -> Report:
    """Run ``report`` over ``[since, until)``; ``now`` dates "overdue" and "open".
    ``registers``: the register definitions (a register report reads one)."""
    if until <= since:
        raise WorkflowError(
            f"the period is empty: --to {until.isoformat()} is not after --from {since.isoformat()}"
        )
    spec = report.spec
    if spec.register is not None:
        return _register_report(store, spec, registers or {}, since, until, now)
    ctx = Context(spec, procs, since, until, now, zone)
    groups: list[dict[tuple[str, ...], Group]] = [defaultdict(Group) for _ in spec.sections]
    measures = {m for s in spec.sections for m in s.measures}
    need_handler = any(k == "handler" for s in spec.sections for k in s.group_by)
    actions = list(spec.handler.actions) if (need_handler and spec.handler) else []
    if "escalations" in measures:
        actions.append("escalation")
    state = spec.deadline.state if isinstance(spec.deadline, StateDeadline) else None
    for batch in _instances(store, ctx):
        rows = [r for r in batch if _admitted(spec, r)]
        if not rows:
            continue
        ids = [r["id"] for r in rows]
        handlers: dict[str, str] = {}
        escalations: dict[str, int] = defaultdict(int)
        if actions:
            for entry in store.reports.instance_entries(ids, actions):
                if entry["action"] == "escalation":
                    escalations[entry["chain_key"]] += 1
                else:
                    handlers[entry["chain_key"]] = entry["actor"]  # the last one wins
        state_tasks: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if state is not None:
            for task in store.reports.instance_tasks(ids, state):
                state_tasks[task["instance_id"]].append(task)
        for row in rows:
            proc = procs[row["process"]]
            verdict, overdue, extended = _deadline_facts(ctx, row, state_tasks[row["id"]])
            spent = _handling_time(ctx, proc, row)
            flags = {
                "received": True,
                "closed": row["status"] != "active",
                "open": row["status"] == "active",
                "on_time": verdict == "on_time",
                "late": verdict == "late",
                "extended": extended,
                "overdue": overdue,
            }
            for si, section in enumerate(spec.sections):
                key = tuple(
                    _key_value(ctx, k, row, handlers.get(row["id"])) for k in section.group_by
                )
                group = groups[si][key]
                for name, flag in flags.items():
                    if flag:
                        group.counts[name] += 1
                group.counts["escalations"] += escalations.get(row["id"], 0)
                if spent is not None and set(TIME_MEASURES) & set(section.measures):
                    group.times.append(spent)
    unit = TIME_UNIT_LABEL[spec.time.unit]
    sections = [_section(s, groups[i], unit) for i, s in enumerate(spec.sections)]
    return Report(
        name=spec.report,
        title=spec.title,
        since=since,
        until=until,
        generated_at=now,
        process=", ".join(spec.processes),
        sections=sections,
    )


def _register_report(
    store: Store,
    spec: ReportSpec,
    registers: dict[str, RegisterSpec],
    since: datetime,
    until: datetime,
    now: datetime,
) -> Report:
    """The register as it stood at ``until`` (each key's last version written before it),
    grouped by field values; ``added``/``changed``: first written / written in the period.

    Reads the register's history once, in key and version order (its own index), and
    holds one key's versions at a time.
    """
    reg = registers.get(spec.register or "")
    if reg is None:
        raise NotFound("register", spec.register, "see 'python run.py registers'")
    groups: list[dict[tuple[str, ...], RegisterGroup]] = [
        defaultdict(RegisterGroup) for _ in spec.sections
    ]

    def count(values: dict[str, Any], added: bool, changed: bool) -> None:
        row = reg.decode_row(values)
        for name, allowed in spec.where.items():
            wanted = allowed if isinstance(allowed, tuple) else (allowed,)
            if _plain_value(row.get(name)) not in {str(w) for w in wanted}:
                return
        for si, section in enumerate(spec.sections):
            key = tuple(
                _plain_value(row.get(k.field)) for k in section.group_by if isinstance(k, FieldKey)
            )
            group = groups[si][key]
            group.counts["rows"] += 1
            group.counts["added"] += added
            group.counts["changed"] += changed
            for name in section.sum:
                value = row.get(name)
                if value is not None:
                    group.sums[name] += Decimal(value)

    current: str | None = None
    last: dict[str, Any] | None = None
    first_at: datetime | None = None
    changed = False
    for entry in store.reports.register_history_until(reg.name, until):
        if entry["key"] != current:
            if last is not None and first_at is not None:
                count(last, first_at >= since, changed)
            current, first_at, changed = entry["key"], entry["at"], False
        last = entry["values"]
        changed = changed or entry["at"] >= since
    if last is not None and first_at is not None:
        count(last, first_at >= since, changed)
    sections = []
    for si, section in enumerate(spec.sections):
        names = tuple(k.field for k in section.group_by if isinstance(k, FieldKey))
        columns = (*names, *section.measures, *(f"sum_{f}" for f in section.sum))
        found = groups[si] or ({(): RegisterGroup()} if not names else {})
        rows = []
        for key, group in sorted(found.items()):
            row: dict[str, Any] = dict(zip(names, key, strict=True))
            for m in section.measures:
                row[m] = group.counts[m]
            for f in section.sum:
                row[f"sum_{f}"] = group.sums[f]
            row["label"] = ": ".join(key) or "all"
            rows.append(row)
        chart = ("label", section.chart) if section.chart else None
        sections.append(Section(section.title, columns, rows, chart=chart))
    return Report(
        name=spec.report,
        title=spec.title,
        since=since,
        until=until,
        generated_at=now,
        process=f"register {reg.name}",
        sections=sections,
    )


@dataclass
class RegisterGroup:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sums: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))


def _plain_value(value: Any) -> str:
    """A field value as a group key or a filter compares it: '-' when unset."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _column(measure: str, unit: str) -> str:
    return f"{measure}_{unit}" if measure in TIME_MEASURES else measure


def _section(section: Any, groups: dict[tuple[str, ...], Group], unit: str) -> Section:
    names = tuple(_key_name(k) for k in section.group_by)
    columns = (*names, *(_column(m, unit) for m in section.measures))
    if not names and not groups:
        groups = {(): Group()}  # a total row of zeros says "nothing happened"
    rows = []
    for key, group in sorted(groups.items()):
        row: dict[str, Any] = dict(zip(names, key, strict=True))
        for m in section.measures:
            row[_column(m, unit)] = _measure(m, group)
        row["label"] = ": ".join(key) or "all"
        rows.append(row)
    chart = ("label", _column(section.chart, unit)) if section.chart else None
    return Section(section.title, columns, rows, chart=chart)


def _measure(measure: str, group: Group) -> Any:
    c = group.counts
    if measure == "on_time_pct":
        return rate(c["on_time"], c["on_time"] + c["late"])
    if measure in TIME_MEASURES:
        values = group.times
        if not values:
            return None
        if measure == "mean_time":
            return (sum(values, Decimal(0)) / len(values)).quantize(CENT, ROUND_HALF_UP)
        return median(values) if measure == "median_time" else percentile(values, 90)
    return c[measure]


# --------------------------------------------------------------------------- for the CLI


def deployed_facts(wf: Any, names: Iterable[str]) -> dict[str, ProcessFacts]:
    out = {}
    deployed = {d["process"] for d in wf.store.list_definitions()}
    for name in names:
        if name in deployed:
            out[name] = process_facts(wf.process(name))
    return out


def workflow_reports(wf: Any) -> dict[str, OwnerReport]:
    """The folder's reports, checked against the deployed processes and the org."""
    folder = Path(wf.processes_dir)
    deployed = {d["process"] for d in wf.store.list_definitions()}
    facts = deployed_facts(wf, deployed)
    return load_owner_reports(folder, facts, set(wf.org.spec.roles), wf.catalog.registers)


def procs_of(wf: Any, report: OwnerReport) -> dict[str, CompiledProcess]:
    if report.missing:
        raise WorkflowError(
            f"report {report.spec.report!r} reads {', '.join(report.missing)}, not deployed yet"
        )
    return {name: wf.process(name) for name in report.spec.processes}


def find_report(reports: dict[str, OwnerReport], name: str) -> OwnerReport:
    if name not in reports:
        choices = ", ".join([*BUILT_IN_NAMES, *sorted(reports)])
        raise NotFound("report", name, f"choose one of: {choices}")
    return reports[name]


def digest(report: Report) -> str:
    """A fingerprint of the figures (for the audit entry of a scheduled run)."""
    from service.display import jsonable

    text = json.dumps(
        [{"t": s.title, "r": s.rows} for s in report.sections], default=jsonable, sort_keys=True
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- schedules


def month_start(moment: datetime, zone: tzinfo) -> datetime:
    first = moment.astimezone(zone).date().replace(day=1)
    return datetime.combine(first, time(), tzinfo=zone)


def scheduled_period(
    report: OwnerReport, slot: datetime, zone: tzinfo
) -> tuple[datetime, datetime]:
    """``previous_month``: the calendar month before the slot's (the report of the 1st
    covers the month just ended); ``month_to_date``: the slot's month up to the slot."""
    assert report.spec.schedule is not None
    this_first = month_start(slot, zone)
    if report.spec.schedule.period == "month_to_date":
        return this_first, slot
    last_first = month_start(this_first - timedelta(days=1), zone)
    return last_first, this_first


def latest_report_slot(
    report: OwnerReport, since: datetime, now: datetime, zone: tzinfo
) -> datetime | None:
    """The latest slot of any of the report's crons in (since, now]; missed older slots
    coalesce into it (after downtime the report goes out once, for the latest period)."""
    from service.timekeeper import latest_cron_slot

    assert report.spec.schedule is not None
    slots = [latest_cron_slot(c, zone, since, now) for c in report.spec.schedule.crons]
    found = [s for s in slots if s is not None]
    return max(found) if found else None


def schedule_key(name: str) -> str:
    return f"report:{name}"


def summary_lines(result: Report) -> list[str]:
    """A few lines of the first section, for the text of the notice (console, robots)."""
    if not result.sections:
        return []
    first = result.sections[0]
    lines = []
    for row in first.rows[:10]:
        parts = [f"{c}={_plain(row.get(c))}" for c in first.columns]
        lines.append(", ".join(parts))
    return lines


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


@dataclass
class ScheduledReports:
    produced: list[str] = field(default_factory=list)  # "name@slot"
    contested: int = 0
    failed: int = 0


def run_scheduled_reports(wf: Any, now: datetime) -> ScheduledReports:
    """Produce every owner report whose slot fell due, once per slot across workers, and
    hand it to the outbox for the ``send_to`` roles (notice ``report_ready``, the HTML
    report as the e-mail body), with an audit entry ``report_run``."""
    import logging

    from engine.errors import Conflict, ShenpiError
    from engine.records import AuditRecord, Notice
    from service.display import display_tz
    from service.reporthtml import render_html

    log = logging.getLogger("shenpi.tick")
    out = ScheduledReports()
    folder = Path(wf.processes_dir)
    if not report_files(folder):
        return out
    try:
        reports = workflow_reports(wf)
    except ShenpiError as exc:
        out.failed += 1
        log.error("owner reports cannot be loaded: %s", exc)
        return out
    zone = display_tz()
    deployed = {d["process"]: d["deployed_at"] for d in wf.store.list_definitions()}
    for name, owned in sorted(reports.items()):
        sched = owned.spec.schedule
        if sched is None or owned.missing:
            continue  # unscheduled, or its processes are not deployed: nothing to report
        key = schedule_key(name)
        baseline = [deployed[p] for p in owned.spec.processes if p in deployed]
        since = wf.store.last_schedule_run(key) or (min(baseline) if baseline else None)
        if since is None:
            continue  # its processes are not deployed: nothing to report on yet
        try:
            slot = latest_report_slot(owned, since, now, zone)
            if slot is None:
                continue
            start, end = scheduled_period(owned, slot, zone)
            result = run_owner_report(
                wf.store,
                owned,
                procs_of(wf, owned),
                start,
                end,
                now,
                zone,
                registers=wf.catalog.registers,
            )
            html = render_html(result, zone)
            period = start.astimezone(zone).strftime("%Y-%m")
            recipients = tuple(f"role:{r}" for r in sched.send_to)
            data = {
                "report": name,
                "title": owned.spec.title,
                "period": period,
                "from": start.isoformat(),
                "to": end.isoformat(),
                "planned_at": slot.isoformat(),
                "fired_at": now.isoformat(),
                "sent_to": list(recipients),
                "digest": digest(result),
            }
            audit = AuditRecord(
                at=slot,
                actor="system",
                action="report_run",
                process=key,
                instance_id=None,
                from_state=None,
                to_state=None,
                data=data,
            )
            command = (
                f"python run.py report {name} --from {start.isoformat()} "
                f"--to {end.isoformat()} -o html --out {name}-{period}.html"
            )
            notice = Notice(
                "report_ready",
                recipients,
                None,
                data=data
                | {
                    "process": key,
                    "summary": summary_lines(result),
                    "command": command,
                    "report_html": html,
                },
            )
            wf.store.claim_schedule_run(key, slot, [audit], [notice], wf.clock())
        except Conflict:
            out.contested += 1
            continue
        except (ShenpiError, ArithmeticError, ValueError) as exc:
            out.failed += 1  # tried again next tick: fix the file or deploy the process
            log.error("scheduled report %s failed: %s", name, exc)
            continue
        out.produced.append(f"{name}@{slot.isoformat()}")
    return out
