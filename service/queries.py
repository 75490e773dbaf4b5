"""Every view a face of Shenpi prints, as plain rows and dicts.

The CLI parses arguments, calls one function here and prints what it gets; the HTTP API
(api/) is a second face on the same calls. Nothing here writes to stdout, knows
about click or reads the environment: time comes in as ``now`` like everywhere else, and
the JSON shapes are the public ones of service/views.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from engine.errors import NoDatabase, NotFound, WorkflowError
from engine.values import check_name
from service.display import iso, iso_text, plain_decimal
from service.views import audit_json, display_variables, instance_json, task_json
from service.workflow import Workflow, org_catalog

if TYPE_CHECKING:
    from engine.catalog import Catalog
    from engine.process import CompiledProcess
    from engine.records import Snapshot, TaskRecord
    from storage.auditchain import AuditCheck, AuditHead
    from storage.auditlog import AuditFilter

__all__ = [
    "InstanceView",
    "org_catalog",
    "Rows",
    "audit_head_view",
    "audit_rows",
    "calendar_view",
    "check_cursor",
    "definition_rows",
    "definition_view",
    "instance_diagram",
    "task_view",
    "validate_text",
    "decision_rows",
    "delivery_rows",
    "deploy_rows",
    "instance_rows",
    "instance_view",
    "opinions",
    "process_graph",
    "require_yaml",
    "retry_deliveries",
    "task_rows",
    "user_rows",
    "validate_files",
    "verify_audit",
]


@dataclass(frozen=True)
class Rows:
    """One page of a listing: the rows, and the cursor of the next page if there is one."""

    items: list[dict[str, Any]]
    next: str | None = None


@dataclass(frozen=True)
class InstanceView:
    """``show``: the JSON document, and the current state's title the table view adds."""

    data: dict[str, Any]
    state_title: str | None
    deadline_phase: str | None  # running, paused, stopped or met: the SLA clock's phase


# --------------------------------------------------------------------------- definitions


def require_yaml(paths: Sequence[Path]) -> None:
    """A folder without YAML (a wrong path, a typo) must not pass as "ok: 0 processes"."""
    from engine.catalog import yaml_files

    if not yaml_files(paths):
        named = ", ".join(str(p) for p in paths)
        raise WorkflowError(f"no YAML files (*.yaml, *.yml) in {named}; check the path")


def validate_files(paths: Sequence[Path], processes_dir: Path) -> dict[str, int]:
    """Check files together with the org and calendars; counts of what they hold."""
    from engine.catalog import load_catalog

    require_yaml(paths)
    catalog = load_catalog(paths, processes_dir / "org.yaml")
    return {
        "processes": len(catalog.processes),
        "users": len(catalog.org.users),
        "calendars": len(catalog.calendars),
        "registers": len(catalog.registers),
        "reports": len(catalog.reports),
    }


def deploy_rows(
    wf: Workflow, paths: Sequence[Path], by: str, now: datetime
) -> list[dict[str, Any]]:
    """Deploy ``paths`` (the processes folder if none) and say what each file became.
    Call :func:`require_yaml` first, before a database is created for nothing."""
    return [
        {
            "process": d.process,
            "version": d.version,
            "status": "deployed" if d.created else "unchanged",
            "file": d.file,
        }
        for d in wf.deploy(list(paths), by=by, now=now)
    ]


def validate_text(wf: Workflow, text: str, file: str) -> dict[str, Any]:
    """Check one posted YAML text as ``validate`` checks a file: against the org,
    calendars and registers of the processes folder. DefinitionError lists every problem."""
    from engine.calendarspec import load_calendar
    from engine.catalog import kind_of
    from engine.errors import DefinitionError
    from engine.org import load_org
    from engine.process import compile_process
    from engine.values import check_name
    from engine.yamlsafe import load_text

    check_name("file", file)
    doc = load_text(text, file)
    kind = kind_of(doc)
    if kind == "process":
        catalog = wf.catalog
        name = compile_process(
            doc, catalog.org, catalog.calendars, registers=catalog.registers
        ).name
    elif kind == "org":
        load_org(doc)
        name = None
    elif kind == "calendar":
        name = load_calendar(doc).calendar
    elif kind == "register":
        from engine.registers import load_register

        name = load_register(doc).name
    elif kind == "report":
        from engine.reportspec import load_report

        name = load_report(doc).report
    else:
        raise DefinitionError(
            [
                doc.problem(
                    (),
                    "not a Shenpi file: the first key must be process, org, calendar, "
                    "register or report",
                )
            ]
        )
    return {"valid": True, "kind": kind, "name": name, "problems": []}


def definition_rows(wf: Workflow) -> list[dict[str, Any]]:
    """The latest deployed version of every process, by name (without the source)."""
    return [_definition_json(wf, row) for row in wf.store.list_definitions()]


def definition_view(wf: Workflow, process: str, version: int | None) -> dict[str, Any]:
    """One deployed version (the latest when ``version`` is None) with its YAML source."""
    from engine.values import check_name

    check_name("process", process)
    row = wf.store.get_definition(process, version)
    if row is None:
        what = process if version is None else f"{process} v{version}"
        raise NotFound("process version" if version else "process", what)
    return _definition_json(wf, row) | {"source": row["source_text"]}


def _definition_json(wf: Workflow, row: dict[str, Any]) -> dict[str, Any]:
    try:
        title: str | None = wf.process(row["process"], row["version"]).spec.title
    except WorkflowError:
        title = None  # a version that no longer compiles still lists
    return {
        "process": row["process"],
        "version": row["version"],
        "title": title,
        "file": row["file"],
        "source_hash": row["source_hash"],
        "deployed_at": iso(row["deployed_at"]),
        "deployed_by": row["deployed_by"],
    }


def process_graph(processes_dir: Path, name: str, wf: Workflow | None) -> str:
    """Mermaid of the latest deployed version, else of the file in ``processes_dir`` (so
    a graph can be drawn before anything is deployed, or with no database at all)."""
    from engine.catalog import load_catalog
    from service.graph import mermaid

    if wf is not None:
        try:
            return mermaid(wf.process(name).spec)
        except (NotFound, NoDatabase):
            pass
    catalog = load_catalog([processes_dir])
    if name not in catalog.processes:
        known = ", ".join(sorted(catalog.processes)) or "none"
        raise NotFound("process", name, f"neither deployed nor in {processes_dir} ({known})")
    return mermaid(catalog.processes[name].spec)


def user_rows(processes_dir: Path, limit: int, after: str | None) -> Rows:
    """The org directory by user id, from the files alone (no database needed)."""
    from storage.paging import decode, encode

    org = org_catalog(processes_dir).org
    start = decode("users", after)[0] if after is not None else None
    ids = sorted(uid for uid in org.users if start is None or uid > start)
    rows = [
        {
            "id": uid,
            "name": org.users[uid].name,
            "roles": list(org.users[uid].roles),
            "active": org.users[uid].active,
            "departments": list(org.users[uid].member_of),
            "manager": org.manager(uid),
            "delegate": org.users[uid].delegate_id,
            "email": org.users[uid].contacts.email,
        }
        for uid in ids[:limit]
    ]
    return Rows(rows, encode("users", rows[-1]["id"]) if len(ids) > limit else None)


def check_cursor(kind: str, value: str) -> None:
    """Raise InvalidData if ``value`` is not a cursor of the ``kind`` listing."""
    from storage.paging import decode

    decode(kind, value)


def calendar_view(catalog: Catalog, name: str, year: int) -> dict[str, Any]:
    """A year of a calendar (``org_catalog`` of the processes folder, or ``wf.catalog``):
    days off, working weekends and warnings."""
    cal = catalog.calendar(name)
    if name != "cn" and name not in catalog.calendars:
        raise NotFound("calendar", name)
    return {
        "calendar": cal.name,
        "year": year,
        "timezone": str(cal.tz),
        "adjustments_known": cal.year_known(year),
        "provisional": cal.is_provisional(year),
        "warnings": cal.warnings_for(datetime(year, 1, 1).date(), datetime(year, 12, 31).date()),
        "non_working_days": [
            {"date": d.isoformat(), "name": n} for d, n in cal.non_working_days(year)
        ],
        "working_weekend_days": [d.isoformat() for d in cal.working_weekend_days(year)],
    }


# --------------------------------------------------------------------------- instances


def state_titles(proc: CompiledProcess) -> dict[str, str]:
    """Each state's task title as the definition gives it (the state's title otherwise)."""
    return {
        name: (st.task.title if st.task and st.task.title else st.title)
        for name, st in proc.spec.states.items()
    }


def variable_types(proc: CompiledProcess) -> dict[str, Any]:
    return {name: var.type for name, var in proc.spec.variables.items()}


def task_rows(
    wf: Workflow,
    now: datetime,
    *,
    user: str | None = None,
    role: str | None = None,
    process: str | None = None,
    include_closed: bool = False,
    overdue: bool = False,
    limit: int = 100,
    after: str | None = None,
) -> Rows:
    """One page of tasks by due time (see Workflow.tasks), each with its title."""
    page = wf.tasks(
        user=user,
        role=role,
        process=process,
        include_closed=include_closed,
        overdue_at=now if overdue else None,
        limit=limit,
        after=after,
        now=now,
    )
    titles = _task_titles(wf, page.items)
    return Rows([task_json(t, now, titles.get(t.id)) for t in page.items], page.next)


def _task_titles(wf: Workflow, found: Iterable[TaskRecord]) -> dict[str, str]:
    """Task id -> title, from the process version each task's instance runs on."""
    found = list(found)
    versions = wf.store.instance_versions({t.instance_id for t in found})
    by_version: dict[tuple[str, int], dict[str, str]] = {}
    titles: dict[str, str] = {}
    for task in found:
        key = versions.get(task.instance_id)
        if key is None:
            continue
        if key not in by_version:
            by_version[key] = state_titles(wf.process(*key))
        title = by_version[key].get(task.state)
        if title:
            titles[task.id] = title
    return titles


def task_view(wf: Workflow, task_id: str, now: datetime) -> dict[str, Any]:
    """One task, open or closed, with its title."""
    from engine.values import check_name

    check_name("task id", task_id)
    task = wf.store.get_task(task_id)
    return task_json(task, now, _task_titles(wf, [task]).get(task.id))


def instance_diagram(wf: Workflow, instance_id: str) -> dict[str, Any]:
    """The instance's process as Mermaid, its current state highlighted."""
    from engine.values import check_name
    from service.graph import mermaid

    check_name("instance id", instance_id)
    snapshot = wf.store.load_snapshot(instance_id)
    proc = wf.process(snapshot.process, snapshot.version)
    return {
        "instance_id": snapshot.id,
        "process": snapshot.process,
        "version": snapshot.version,
        "state": snapshot.state,
        "status": snapshot.status,
        "open_tasks": [t.id for t in snapshot.tasks],
        "mermaid": mermaid(proc.spec, current=snapshot.state),
    }


def instance_view(
    wf: Workflow, instance_id: str, viewer: str | None, now: datetime
) -> InstanceView:
    """An instance as ``viewer`` may see it (None: an operator, everything): variables,
    open tasks, timers and the instance deadline, its history and the opinions given."""
    check_name("instance id", instance_id)
    snapshot = wf.store.load_snapshot(instance_id)
    proc = wf.process(snapshot.process, snapshot.version)
    titles = state_titles(proc)
    tasks = [task_json(t, now, titles.get(t.state)) for t in snapshot.tasks]
    history = wf.visible_history(
        snapshot, [audit_json(r) for r in wf.store.query_audit(instance_id=instance_id)], viewer
    )
    variables = display_variables(variable_types(proc), wf.visible_variables(snapshot, viewer, now))
    # the SLA clock is stored in the calendar's zone; shown in the display zone like every time
    deadlines = wf.deadlines(snapshot, time=iso, number=plain_decimal)
    for timer in deadlines["timers"]:
        for key in ("due_at", "fired_at"):
            timer[key] = iso(timer[key])
    data = instance_json(
        snapshot,
        variables,
        tasks,
        history=history,
        opinions=opinions(history, titles),
        deadlines=deadlines,
        # readers (抄送): who was copied, by whom, when (in the display zone like every time)
        cc=[r | {"at": iso_text(r["at"])} for r in snapshot.meta.get("cc", ())],
        **links_json(snapshot),
    )
    clock = snapshot.sla
    return InstanceView(data, titles.get(snapshot.state), clock.phase if clock else None)


def links_json(snapshot: Snapshot) -> dict[str, Any]:
    """Linked processes: the instance's parent ``{id, process, state}`` (None) and its
    children, each ``{id, process, state, wait, on_parent_end, status, outcome}`` as the
    parent last heard of them (engine.links)."""
    keys = ("id", "process", "state", "wait", "on_parent_end", "status", "outcome")
    children = [{k: c.get(k) for k in keys} for c in snapshot.meta.get("children", ())]
    return {"parent": snapshot.meta.get("parent"), "children": children}


def opinions(history: Iterable[dict[str, Any]], titles: dict[str, str]) -> list[dict[str, Any]]:
    """The approval trail (审批意见) of an instance: every step a person took, oldest
    first, with the state it was taken in, the action and the comment.

    From the audit log, where each action is an entry of its own: a countersign's
    signers each keep their opinion (none is overwritten by the next, as a shared
    variable would be), and a reassignment that resets a task's signoffs loses none.
    Refusals (``denied``) and claims are no opinions; timers and routing are the system's.
    """
    from engine.runtime import SYSTEM
    from storage.listing import NOT_DECISIONS

    out = []
    for entry in history:
        if entry["actor"] == SYSTEM or entry["action"] in NOT_DECISIONS:
            continue
        data = entry.get("data") or {}
        state = entry["from_state"]  # None for the start: nobody acted in a state yet
        out.append(
            {
                "seq": entry["seq"],
                "at": entry["at"],
                "actor": entry["actor"],
                "on_behalf_of": entry["on_behalf_of"],
                "task_id": entry.get("task_id"),
                "state": state,
                "step": titles.get(state) if state else None,
                "role": data.get("role"),
                "action": entry["action"],
                "comment": data.get("comment"),
            }
        )
    return out


def instance_rows(
    wf: Workflow,
    *,
    process: str | None = None,
    state: str | None = None,
    status: str | None = None,
    requester: str | None = None,
    viewer: str | None = None,
    parent: str | None = None,
    limit: int = 100,
    after: str | None = None,
) -> Rows:
    """One page of instances, oldest first, variables as shown (no tasks).

    ``parent``: only the children that instance started (linked processes); an id
    that names no instance is refused rather than listing nothing.

    ``requester``: only the requests this user started ("my requests"; a user of the
    org, so that a typo is refused rather than listing nothing). ``viewer``: variables
    as that user may see them (confidential ones masked, as ``show --as`` does);
    None is the operator's view.
    """
    if requester is not None:
        check_name("requester", requester)
        wf.org.user(requester)
    if viewer is not None:
        check_name("user", viewer)
        wf.org.user(viewer)
    if parent is not None:
        check_name("parent instance id", parent)
        wf.store.load_snapshot(parent)
    page = wf.store.instance_page(
        process=process,
        state=state,
        status=status,
        requester=requester,
        parent=parent,
        limit=limit,
        after=after,
    )
    types = {
        key: variable_types(wf.process(*key))
        for key in {(s.process, s.version) for s in page.items}
    }
    rows = []
    for s in page.items:
        values = s.variables if viewer is None else wf.visible_variables(s, viewer)
        rows.append(instance_json(s, display_variables(types[(s.process, s.version)], values), []))
    return Rows(rows, page.next)


def decision_rows(wf: Workflow, user: str, *, limit: int = 100, after: str | None = None) -> Rows:
    """``tasks --done-by USER``: each decision or signature USER gave on a task, newest
    first, with the comment, the state it was given in and the task as it is now.

    One row per entry of the audit log, so each signer of a 会签 has a row of their own
    with their own comment, and a task decided by someone acting for USER is not USER's.
    """
    check_name("user", user)
    wf.org.user(user)
    page = wf.store.decision_page(user, limit=limit, after=after)
    found = wf.store.tasks_by_id({r["task_id"] for r in page.items})
    titles = _task_titles(wf, found.values())
    rows = []
    for entry in page.items:
        task = found.get(entry["task_id"])
        data = entry["data"] or {}
        row: dict[str, Any] = {
            "id": entry["task_id"],
            "instance_id": entry["instance_id"],
            "process": entry["process"],
            "state": entry["from_state"],
            "action": entry["action"],
            "comment": data.get("comment"),
            "at": iso(entry["at"]),
            "on_behalf_of": entry["on_behalf_of"],
            "to_state": entry["to_state"],
            "role": data.get("role"),
            "seq": entry["seq"],
            "task_status": task.status if task else None,
            "decision": task.decision if task else None,
            "decided_by": task.decided_by if task else None,
        }
        title = titles.get(entry["task_id"])
        if title:
            row["title"] = title
        rows.append(row)
    return Rows(rows, page.next)


# --------------------------------------------------------------------------- audit


def audit_rows(
    wf: Workflow, *, limit: int = 100, after: str | None = None, **filters: Unpack[AuditFilter]
) -> Rows:
    """One page of the audit log, oldest first, by the filters given."""
    page = wf.store.audit_page(limit=limit, after=after, **filters)
    return Rows([audit_json(r) for r in page.items], page.next)


def verify_audit(wf: Workflow, head: AuditHead | None, require_key: bool) -> AuditCheck:
    """Check every hash chain (and against a head kept outside, if given)."""
    return wf.store.check_audit(head, require_key)


def audit_head_view(wf: Workflow, taken: datetime) -> dict[str, Any]:
    """The log's head, to keep outside the database, with what it covers."""
    store = wf.store
    head, unkeyed = store.audit_head()
    return {
        "head": head.token(),
        "seq": head.seq,
        "entries": head.entries,
        "chains": head.chains,
        "digest": head.digest,
        "unkeyed": unkeyed,
        "key_id": store.audit_keys.current,
        "taken_at": iso(taken),
    }


# --------------------------------------------------------------------------- deliveries


def delivery_rows(wf: Workflow, status: str | None, limit: int) -> list[dict[str, Any]]:
    """Deliveries (one per notice, recipient and channel), oldest first."""
    rows: list[dict[str, Any]] = wf.store.deliveries.list(status, limit)
    return rows


def retry_deliveries(wf: Workflow, ids: Sequence[int], now: datetime) -> list[int]:
    """Queue dead deliveries again with fresh attempts; the ids that were dead."""
    return wf.store.deliveries.retry(ids, now)
