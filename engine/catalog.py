"""A folder of YAML (processes, the org directory, calendars) loaded and checked together.

A file says what it is by its first key: ``process:``, ``org:``, ``calendar:`` or
``register:`` (a register's definition, kept in ``registers/`` beside org.yaml) or
``report:`` (an owner-defined report, engine.reportspec). Every
problem in every file is collected before anything is refused, so ``validate`` shows the
whole list at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.calendar import WorkingCalendar, default_calendar
from engine.calendarspec import CalendarSpec, load_calendar
from engine.errors import DefinitionError, Problem
from engine.org import Org, load_org
from engine.process import CompiledProcess, compile_process
from engine.registers import RegisterSpec, load_register
from engine.reportspec import ReportSpec, check_report, load_report, process_facts
from engine.yamlsafe import Document, load_file, load_text

YAML_SUFFIXES = (".yaml", ".yml")
KINDS = ("process", "org", "calendar", "register", "report")
REGISTERS_DIR = "registers"  # register files, beside org.yaml: read by every command
# Files kept in the processes folder for another component, skipped here: channels.yaml
# (first key ``channels``) and hooks.yaml (first key ``senders``) live there by default and
# are checked when tick or serve loads them.
OTHER_KINDS = ("channels", "senders")


@dataclass
class Catalog:
    org: Org
    processes: dict[str, CompiledProcess] = field(default_factory=dict)
    calendars: dict[str, WorkingCalendar] = field(default_factory=dict)
    registers: dict[str, RegisterSpec] = field(default_factory=dict)
    reports: dict[str, ReportSpec] = field(default_factory=dict)

    def calendar(self, name: str | None = None) -> WorkingCalendar:
        return self.calendars.get(name or "cn") or default_calendar()


def yaml_files(paths: Iterable[Path | str]) -> list[Path]:
    """The YAML files named, or found below the folders named, in a stable order."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES))
        else:
            out.append(path)
    return out


def _first_key(doc: Document) -> object:
    return next(iter(doc.data), None) if isinstance(doc.data, dict) else None


def kind_of(doc: Document) -> str | None:
    """The file's kind is its first key, as the reference says, and nothing else."""
    if isinstance(doc.data, dict) and doc.data:
        first = next(iter(doc.data))
        return first if first in KINDS else None
    return None


def load_catalog(paths: Sequence[Path | str], org_fallback: Path | None = None) -> Catalog:
    """Load and cross-check every file; raise one DefinitionError listing every problem."""
    problems: list[Problem] = []
    docs: list[tuple[str, Document]] = []
    files = yaml_files(paths)
    # register files found beside org_fallback, not named: a register of the same name
    # among the files named (one being edited, a folder being validated) replaces them
    fallback: set[Path] = set()
    if org_fallback is not None:
        # calendars and registers live beside org.yaml in calendars/ and registers/: a
        # single process file validated or deployed alone must see them as the running
        # engine does
        for folder in ("calendars", REGISTERS_DIR):
            extra = org_fallback.parent / folder
            if extra.is_dir():
                known = {p.resolve() for p in files}
                found = [p for p in yaml_files([extra]) if p.resolve() not in known]
                files += found
                if folder == REGISTERS_DIR:
                    fallback = {p.resolve() for p in found}
    for path in files:
        try:
            doc = load_file(path)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        kind = kind_of(doc)
        if kind is None and _first_key(doc) in OTHER_KINDS:
            continue
        if kind is None:
            problems.append(
                doc.problem(
                    (),
                    "not a Shenpi file: the first key must be process, org, calendar, "
                    "register or report",
                )
            )
            continue
        docs.append((kind, doc))

    org_docs = [d for k, d in docs if k == "org"]
    if not org_docs and org_fallback is not None and org_fallback.exists():
        try:
            org_docs = [load_file(org_fallback)]
        except DefinitionError as exc:
            problems.extend(exc.problems)
    org: Org | None = None
    if len(org_docs) > 1:
        problems.extend(
            d.problem((), "a second org directory; keep one org file") for d in org_docs[1:]
        )
    if org_docs:
        try:
            org = load_org(org_docs[0])
        except DefinitionError as exc:
            problems.extend(exc.problems)
    elif not problems:
        where = str(org_fallback) if org_fallback else "the processes folder"
        problems.append(Problem(where, 1, 1, "no org directory (org.yaml) found"))

    calendars: dict[str, WorkingCalendar] = {}
    for kind, doc in docs:
        if kind != "calendar":
            continue
        try:
            spec: CalendarSpec = load_calendar(doc)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        if spec.calendar in calendars:
            problems.append(doc.problem(("calendar",), f"calendar {spec.calendar!r} defined twice"))
        calendars[spec.calendar] = WorkingCalendar(spec)

    registers: dict[str, RegisterSpec] = {}
    named = [d for k, d in docs if k == "register" and Path(d.file).resolve() not in fallback]
    spare = [d for k, d in docs if k == "register" and Path(d.file).resolve() in fallback]
    spare_ids = {id(d) for d in spare}
    for doc in named + spare:
        try:
            reg = load_register(doc)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        if id(doc) in spare_ids and reg.name in registers:
            continue  # the file named replaces the folder's copy
        if reg.name in registers:
            problems.append(doc.problem(("register",), f"register {reg.name!r} defined twice"))
        registers[reg.name] = reg

    processes: dict[str, CompiledProcess] = {}
    for kind, doc in docs:
        if kind != "process" or org is None:
            continue
        try:
            compiled = compile_process(doc, org, calendars, registers=registers)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        if compiled.name in processes:
            problems.append(
                doc.problem(
                    ("process",),
                    f"process {compiled.name!r} is also defined in {processes[compiled.name].file}",
                )
            )
        processes[compiled.name] = compiled
    reports = _reports(docs, processes, org, problems, registers)
    if problems:
        raise DefinitionError(problems)
    assert org is not None
    return Catalog(org, processes, calendars, registers, reports)


def _reports(
    docs: list[tuple[str, Document]],
    processes: dict[str, CompiledProcess],
    org: Org | None,
    problems: list[Problem],
    registers: dict[str, RegisterSpec],
) -> dict[str, ReportSpec]:
    """Owner-defined reports, checked against the processes loaded with them (the whole
    folder; a report file validated without any process file is checked on its own)."""
    facts = {n: process_facts(p) for n, p in processes.items()} if processes else None
    roles = set(org.spec.roles) if org else None  # a broken org: its own problems say so
    reports: dict[str, ReportSpec] = {}
    for kind, doc in docs:
        if kind != "report":
            continue
        try:
            spec = load_report(doc)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(check_report(spec, doc, facts, roles, registers))
        if spec.report in reports:
            problems.append(doc.problem(("report",), f"report {spec.report!r} defined twice"))
        reports[spec.report] = spec
    return reports


def org_catalog(processes_dir: Path) -> Catalog:
    """The org, calendars and registers of a processes folder: all that `calendar`,
    `users` and `registers` read, so they work before any database exists."""
    return load_catalog(org_catalog_files(processes_dir))


def org_catalog_files(processes_dir: Path) -> list[Path]:
    """The files :func:`org_catalog` reads: org.yaml, the calendar and register files."""
    out = [processes_dir / "org.yaml"]
    for folder in ("calendars", REGISTERS_DIR):
        if (processes_dir / folder).is_dir():
            out += yaml_files([processes_dir / folder])
    return out


def compile_stored(text: str, file: str, catalog: Catalog) -> CompiledProcess:
    """Recompile a deployed version from its stored source (running instances keep theirs).

    Without the people checks: who is in org.yaml today must not make a deployed version,
    and so its running instances, unusable; a schedule whose user is gone fails that run.
    """
    return compile_process(
        load_text(text, file),
        catalog.org,
        catalog.calendars,
        people=False,
        registers=catalog.registers,
    )
