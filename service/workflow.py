"""The application layer: the one facade the CLI, the scheduler and the HTTP API call.

It joins the pure engine (definitions, ``fire``) to storage (snapshots, atomic apply) and
the org directory (who may act). Time comes in as ``now``; ``clock`` only stamps the real
``recorded_at`` next to it, so ``--now`` can back-date an entry without hiding that it did.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.catalog import Catalog, compile_stored, load_catalog, org_catalog, org_catalog_files
from engine.errors import (
    ActionNotAllowed,
    Conflict,
    NotFound,
    OutOfOrder,
    TaskClosed,
    WorkflowError,
)
from engine.operations import (
    AddSigners,
    Cc,
    Claim,
    Remind,
    Rollback,
    Transfer,
    Unclaim,
    Where,
    Withdraw,
)
from engine.org import Actor, Org, load_org
from engine.process import CompiledProcess
from engine.records import AuditRecord, Snapshot, TaskRecord
from engine.registers import RegisterReader
from engine.runtime import (
    SYSTEM,
    Act,
    Event,
    Start,
    authorize,
    decode_variables,
    fire,
    live_values,
)
from engine.sla import NumberText, TimeText
from engine.values import check_input_names, check_name, check_text, encode
from engine.yamlsafe import load_file
from service import links
from storage.paging import Page

if TYPE_CHECKING:
    from service.defcache import DefinitionCache
    from storage.store import Store

__all__ = ["Deployed", "Workflow", "new_id", "org_catalog", "system_clock"]

Clock = Callable[[], datetime]
HIDDEN = "***"
LATEST_TTL_S = 5.0


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deployed:
    process: str
    version: int
    created: bool
    file: str


class Workflow:
    """Start, act, query; deploy definitions.

    Safe to share between threads (the HTTP server's request threads share one): the
    store is (a pool of connections), the engine's compiled processes are read, never
    changed, and the caches here only ever fill in a value that is the same whoever
    computes it, so a race costs at most one compile twice. The per-step state is local.
    """

    def __init__(
        self,
        store: Store,
        processes_dir: Path | str,
        clock: Clock = system_clock,
        cache: DefinitionCache | None = None,
    ):
        """``cache`` keeps compiled versions and the org between processes (the CLI's)."""
        self.store = store
        self.processes_dir = Path(processes_dir)
        self.clock = clock
        self.cache = cache
        self._org: Org | None = None
        self._catalog: Catalog | None = None
        self._compiled: dict[tuple[str, int], CompiledProcess] = {}
        self._latest: dict[str, tuple[int, float]] = {}

    @classmethod
    def open(
        cls,
        db_url: str,
        processes_dir: Path | str,
        *,
        create: bool = False,
        group_commit: bool = False,
    ) -> Workflow:
        """The facade on a database URL. Without ``create`` a missing database is refused
        (NoDatabase) rather than left behind, empty, by a typo in the URL. With
        ``group_commit`` steps of concurrent threads share commits (storage.groupcommit):
        for a server; a CLI command has one thread and gains nothing."""
        from service.defcache import DefinitionCache
        from storage.db import open_database
        from storage.groupcommit import GroupCommitStore
        from storage.store import Store

        kind = GroupCommitStore if group_commit else Store
        store = kind(open_database(db_url, create=create))
        return cls(store, processes_dir, cache=DefinitionCache.from_env())

    # ------------------------------------------------------------------ definitions

    @property
    def org(self) -> Org:
        if self._org is None:
            path = self.processes_dir / "org.yaml"
            if not path.exists():
                raise WorkflowError(
                    f"no org directory at {path}; pass --processes DIR pointing at the folder "
                    "with org.yaml"
                )
            if self.cache is None:
                self._org = load_org(load_file(path))
            else:
                self._org = self.cache.org(path, lambda: load_org(load_file(path)))
        return self._org

    @property
    def catalog(self) -> Catalog:
        """Org and calendars for compiling stored versions (processes are compiled on demand)."""
        if self._catalog is None:
            self._catalog = org_catalog(self.processes_dir)
            self._org = self._catalog.org
        return self._catalog

    def deploy(
        self, paths: Sequence[Path | str] = (), by: str = "system", now: datetime | None = None
    ) -> list[Deployed]:
        """Validate every file, then store each process as a new version unless unchanged."""
        now = now or self.clock()
        check_name("deploying user", by)
        catalog = load_catalog(list(paths) or [self.processes_dir], self.processes_dir / "org.yaml")
        if by != SYSTEM:
            catalog.org.actor(by)  # the audit names who deployed: a real, active person
        result = []
        for name, proc in sorted(catalog.processes.items()):
            version, created = self.store.save_definition(
                name, proc.source_hash, proc.source_text, proc.file, now, self.clock(), by
            )
            if created:
                self.store.append_audit(
                    [
                        AuditRecord(
                            at=now,
                            actor=by,
                            action="deploy",
                            process=name,
                            instance_id=None,
                            from_state=None,
                            to_state=None,
                            data={
                                "version": version,
                                "sha256": proc.source_hash,
                                "file": proc.file,
                            },
                        )
                    ],
                    self.clock(),
                )
                self._compiled[(name, version)] = proc
            self._latest.pop(name, None)
            result.append(Deployed(name, version, created, proc.file))
        return result

    def process(self, name: str, version: int | None = None) -> CompiledProcess:
        """A deployed version (the latest if None), compiled once per (name, version)."""
        if version is None:
            version = self.latest_version(name)
        key = (name, version)
        if key not in self._compiled:
            row = self.store.get_definition(name, version)
            if row is None:
                raise NotFound("process version", f"{name} v{version}")
            self._compiled[key] = self._compile_stored(row["source_text"], row["file"])
        return self._compiled[key]

    def _compile_stored(self, text: str, file: str) -> CompiledProcess:
        def make() -> CompiledProcess:
            return compile_stored(text, file, self.catalog)

        if self.cache is None:
            return make()
        return self.cache.process(text, file, org_catalog_files(self.processes_dir), make)

    def latest_version(self, name: str) -> int:
        """The version new instances start on; re-read at most every few seconds so a
        long-running server notices deploys made by other processes."""
        cached = self._latest.get(name)
        now = time.monotonic()
        if cached is not None and now - cached[1] < LATEST_TTL_S:
            return cached[0]
        row = self.store.get_definition(name)
        if row is None:
            raise NotFound(
                "process", name, "deploy it first with 'python run.py deploy' (see 'deploy --help')"
            )
        version = int(row["version"])
        self._latest[name] = (version, now)
        return version

    def reader(self, proc: CompiledProcess) -> RegisterReader | None:
        """A fresh register reader for one step of ``proc`` (each register pinned at its
        version on the step's first read of it); None when ``proc`` declares none."""
        if not proc.registers:
            return None
        from storage.registers import StoreRegisterReader

        return StoreRegisterReader(self.store.registers)

    # ------------------------------------------------------------------ commands

    def actor(
        self, user: str, now: datetime | None = None, proc: CompiledProcess | None = None
    ) -> Actor:
        """``user`` as an actor; with ``now``, delegations limited to dates count only on
        their days, read in the zone of ``proc``'s calendar (as task assignment reads them)."""
        return self.org.actor(user, now, proc.calendar.tz if proc is not None else None)

    def start(
        self, process: str, user: str, data: Mapping[str, Any], now: datetime | None = None
    ) -> Snapshot:
        now = now or self.clock()
        check_name("process", process)
        check_name("user", user)
        check_input_names(data)
        version = self.latest_version(process)
        proc = self.process(process, version)
        actor = self.actor(user, now, proc)
        outcome = fire(
            proc, None, Start(new_id(), version), actor, data, now, registers=self.reader(proc)
        )
        links.apply(self, outcome, now)  # with the children it starts, if any
        return outcome.snapshot

    def act(
        self,
        task_id: str,
        action: str,
        user: str,
        data: Mapping[str, Any] | None = None,
        comment: str | None = None,
        now: datetime | None = None,
    ) -> Snapshot:
        """``now`` None means the real clock: then a step recorded by a worker whose clock
        runs slightly ahead does not make this one refused as out of order."""
        # checked before anything is looked up or recorded: a name no backend can store
        # (undecodable bytes, control characters) is refused like a wrong type, with no
        # `denied` entry; a well-formed action the task does not offer is still recorded
        check_name("action", action)
        if comment is not None:
            check_text("comment", comment)
        check_input_names(data or {})
        return self.on_task(task_id, user, Act(task_id, action, comment), data or {}, now)

    def add_signer(
        self,
        task_id: str,
        users: Sequence[str],
        where: str,
        user: str,
        mode: str = "any",
        comment: str | None = None,
        now: datetime | None = None,
    ) -> Snapshot:
        """加签: add ``users`` to the task before, after or beside ``user`` (engine.addsign)."""
        for name in users:
            check_name("user", name)
        if comment is not None:
            check_text("comment", comment)
        try:
            place = Where(where)
        except ValueError:
            raise WorkflowError(
                f"--where {where!r}: choose one of {', '.join(w.value for w in Where)}"
            ) from None
        event = AddSigners(task_id, tuple(users), place, mode, comment)
        return self.on_task(task_id, user, event, None, now)

    def rollback(
        self,
        task_id: str,
        to: str,
        user: str,
        comment: str | None = None,
        now: datetime | None = None,
    ) -> Snapshot:
        """退回: send the request back to an earlier state or (``start``) to the requester."""
        check_name("state", to)
        if comment is not None:
            check_text("comment", comment)
        return self.on_task(task_id, user, Rollback(task_id, to, comment), None, now)

    def on_task(
        self,
        task_id: str,
        user: str,
        event: Event,
        data: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Snapshot:
        """Fire ``event`` (an action or an operation on an open task: transfer, claim...)
        as ``user``; a refusal is recorded as ``denied`` and changes nothing else."""
        for attempt in range(links.RETRIES):
            try:
                return self._on_task(task_id, user, event, data, now)
            except Conflict as exc:
                if not links.retrying(task_id.rpartition("-")[0], attempt, exc):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _on_task(
        self,
        task_id: str,
        user: str,
        event: Event,
        data: Mapping[str, Any] | None,
        now: datetime | None,
    ) -> Snapshot:
        check_name("task id", task_id)
        check_name("user", user)
        actor = self.actor(user)
        snapshot = self._snapshot_of_task(task_id)
        task = next((t for t in snapshot.tasks if t.id == task_id), None)
        what = getattr(event, "action", None) or type(event).__name__.lower()
        if task is None:
            raise self._closed(task_id, what)  # decided since we first looked
        now = self._step_time(snapshot, now)
        proc = self.process(snapshot.process, snapshot.version)
        actor = self.actor(user, now, proc)
        try:
            outcome = fire(
                proc, snapshot, event, actor, data or {}, now, registers=self.reader(proc)
            )
        except ActionNotAllowed as exc:
            self._record_denial(snapshot, task.id, exc, user, now)
            raise
        try:
            links.apply(self, outcome, now)
        except Conflict as exc:
            if exc.instance_id != snapshot.id:
                raise  # a linked instance changed meanwhile: on_task computes it again
            # lost a race: if the task was closed by the winner, say so and by whom
            closed = self._closed(task_id, what)
            if closed.status != "open":
                raise closed from None
            raise
        return replace(outcome.snapshot, row_version=snapshot.row_version + 1)

    def on_instance(
        self, instance_id: str, user: str, event: Event, now: datetime | None = None
    ) -> Snapshot:
        """Fire ``event`` on a whole instance (withdraw, cc) as ``user``; a refusal is
        recorded as ``denied`` and changes nothing else."""
        for attempt in range(links.RETRIES):
            try:
                return self._on_instance(instance_id, user, event, now)
            except Conflict as exc:
                if not links.retrying(instance_id, attempt, exc):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _on_instance(
        self, instance_id: str, user: str, event: Event, now: datetime | None
    ) -> Snapshot:
        check_name("instance id", instance_id)
        check_name("user", user)
        actor = self.actor(user)
        snapshot = self.store.load_snapshot(instance_id)
        now = self._step_time(snapshot, now)
        proc = self.process(snapshot.process, snapshot.version)
        actor = self.actor(user, now, proc)
        try:
            outcome = fire(proc, snapshot, event, actor, {}, now, registers=self.reader(proc))
        except ActionNotAllowed as exc:
            self._record_denial(snapshot, None, exc, user, now)
            raise
        links.apply(self, outcome, now)  # with the children it cancels, if any
        return replace(outcome.snapshot, row_version=snapshot.row_version + 1)

    # the approval operations (issue 9): thin calls, shared by the CLI and the HTTP API

    def withdraw(
        self, instance_id: str, user: str, comment: str | None = None, now: datetime | None = None
    ) -> Snapshot:
        """撤回: the requester (or their delegate) takes back an active request."""
        _check_comment(comment)
        return self.on_instance(instance_id, user, Withdraw(comment), now)

    def cc(
        self,
        instance_id: str,
        user: str,
        to: Sequence[str],
        comment: str | None = None,
        now: datetime | None = None,
    ) -> Snapshot:
        """抄送: copy the instance to ``to`` (readers told now, who may ``show`` it)."""
        for reader in to:
            check_name("user", reader)
        _check_comment(comment)
        return self.on_instance(instance_id, user, Cc(tuple(to), comment), now)

    def transfer(
        self, task_id: str, user: str, to: str, comment: str, now: datetime | None = None
    ) -> Snapshot:
        """转交: ``user``'s turn on the task becomes ``to``'s alone."""
        check_name("user", to)
        _check_comment(comment)
        return self.on_task(task_id, user, Transfer(task_id, to, comment), None, now)

    def remind(
        self, task_id: str, user: str, comment: str | None = None, now: datetime | None = None
    ) -> Snapshot:
        """催办: tell whoever the task waits for, now (at most once an hour per task)."""
        _check_comment(comment)
        return self.on_task(task_id, user, Remind(task_id, comment), None, now)

    def claim(self, task_id: str, user: str, now: datetime | None = None) -> Snapshot:
        """Take a role task: it is ``user``'s alone until released."""
        return self.on_task(task_id, user, Claim(task_id), None, now)

    def unclaim(self, task_id: str, user: str, now: datetime | None = None) -> Snapshot:
        """Release a claimed task to everyone it was assigned to."""
        return self.on_task(task_id, user, Unclaim(task_id), None, now)

    def _step_time(self, snapshot: Snapshot, now: datetime | None) -> datetime:
        """The step's time: the real clock, never before the instance's last step; an
        explicit ``now`` before it is refused before anything (even a denial) is dated
        into the past."""
        if now is None:
            return max(self.clock(), snapshot.updated_at)
        if now < snapshot.updated_at:
            last = snapshot.updated_at.astimezone(now.tzinfo).isoformat()
            raise OutOfOrder(snapshot.id, now.isoformat(), last)
        return now

    def _closed(self, task_id: str, action: str) -> TaskClosed:
        """The refusal for a task no longer open, saying who decided it."""
        task = self.store.get_task(task_id)
        return TaskClosed(task_id, action, task.status, task.decision, task.decided_by)

    def _snapshot_of_task(self, task_id: str) -> Snapshot:
        """Task ids are ``<instance>-<n>``: load the instance directly, one query fewer."""
        instance_id, sep, n = task_id.rpartition("-")
        if sep and n.isdigit():
            try:
                return self.store.load_snapshot(instance_id)
            except NotFound:
                pass
        return self.store.load_snapshot(self.store.get_task(task_id).instance_id)

    def _record_denial(
        self,
        snapshot: Snapshot,
        task_id: str | None,
        exc: ActionNotAllowed,
        user: str,
        now: datetime,
    ) -> None:
        """A refused action changes nothing but the audit log: who tried what, and why not."""
        self.store.append_audit(
            [
                AuditRecord(
                    at=now,
                    actor=user,
                    action="denied",
                    process=snapshot.process,
                    instance_id=snapshot.id,
                    from_state=snapshot.state,
                    to_state=snapshot.state,
                    task_id=task_id,
                    data={"action": exc.action, "reason": exc.reason},
                )
            ],
            self.clock(),
        )

    # ------------------------------------------------------------------ queries

    def tasks(
        self,
        *,
        user: str | None = None,
        role: str | None = None,
        process: str | None = None,
        include_closed: bool = False,
        overdue_at: datetime | None = None,
        limit: int = 100,
        after: str | None = None,
        now: datetime | None = None,
    ) -> Page[TaskRecord]:
        """One page of tasks by due time; with ``user``, only those they may act on now.

        ``now`` (default: the clock) is the moment "now" means: a delegation limited to
        dates lists the absentee's tasks only on its days, as acting on them is allowed.

        The roles the user holds or stands in for select candidates in SQL (an index range
        scan per role, in due order); four-eyes and countersign rules need the process
        definition, so they run here on each candidate, and the store keeps reading
        candidates until the page is full: excluded tasks never push waiting ones out.
        """
        roles: set[str] | None = None
        actor = self.org.actor(user) if user is not None else None
        if actor is not None:
            roles = actor.task_keys()
        if role is not None:
            if role not in self.org.roles:
                raise NotFound("role", role, "see 'python run.py users'")
            roles = {role} if roles is None else roles & {role}
        when = now or self.clock()
        actors: dict[Any, Actor] = {}  # by calendar zone: one org walk per zone, not per task
        keep = partial(self._may_act, user=user, now=when, actors=actors) if user else None
        return self.store.task_page(
            roles=roles,
            process=process,
            status=None if include_closed else "open",
            overdue_at=overdue_at,
            limit=limit,
            after=after,
            keep=keep,
        )

    def _may_act(
        self,
        task: TaskRecord,
        owner: Snapshot,
        user: str,
        now: datetime,
        actors: dict[Any, Actor],
    ) -> bool:
        """Drop tasks the user holds the role for but may not act on (four-eyes, signed,
        an absentee's task outside the days of a dated delegation)."""
        if task.status != "open":
            return True
        proc = self.process(owner.process, owner.version)
        tz = proc.calendar.tz
        actor = actors.get(tz) or actors.setdefault(tz, self.actor(user, now, proc))
        try:
            authorize(proc, owner, task, task.actions[0], actor)
        except ActionNotAllowed:
            return False
        return True

    def visible_variables(
        self, snapshot: Snapshot, viewer: str | None, now: datetime | None = None
    ) -> dict[str, Any]:
        """Variables as ``viewer`` may see them, with ``live`` ones computed as of ``now``;
        confidential ones masked unless the viewer is entitled."""
        proc = self.process(snapshot.process, snapshot.version)
        values = dict(snapshot.variables)
        if now is not None and any(v.live for v in proc.spec.variables.values()):
            typed = decode_variables(proc, snapshot.variables)
            live = live_values(proc, typed, now, snapshot.requester)
            values.update({k: encode(v) for k, v in live.items()})
        if self.entitled(snapshot, viewer):
            return values
        return {
            k: (HIDDEN if proc.spec.variables.get(k) and proc.spec.variables[k].confidential else v)
            for k, v in values.items()
        }

    def entitled(self, snapshot: Snapshot, viewer: str | None) -> bool:
        """May ``viewer`` see confidential values? Operators (no viewer), the requester and
        the process's ``confidential_to`` roles may."""
        if viewer is None or viewer == snapshot.requester:
            return True
        proc = self.process(snapshot.process, snapshot.version)
        return bool(set(self.org.user(viewer).roles) & set(proc.spec.confidential_to))

    def visible_history(
        self, snapshot: Snapshot, rows: list[dict[str, Any]], viewer: str | None
    ) -> list[dict[str, Any]]:
        """Audit rows of the instance with confidential values masked for ``viewer``: the
        history must not give away what the variables view hides."""
        if self.entitled(snapshot, viewer):
            return rows
        proc = self.process(snapshot.process, snapshot.version)
        secret = {k for k, v in proc.spec.variables.items() if v.confidential}
        out = []
        for row in rows:
            data = dict(row.get("data") or {})
            for key in ("input", "computed"):
                if isinstance(data.get(key), dict):
                    data[key] = _mask(data[key], secret)
            if isinstance(data.get("decisions"), list):
                data["decisions"] = [
                    d
                    | {"inputs": _mask(d.get("inputs", {}), secret)}
                    | {"outputs": _mask(d.get("outputs", {}), secret)}
                    for d in data["decisions"]
                ]
            out.append(row | {"data": data})
        return out

    def deadlines(
        self, snapshot: Snapshot, time: TimeText = datetime.isoformat, number: NumberText = str
    ) -> dict[str, Any]:
        """Every timer of the instance, fired, cancelled and planned, and the SLA clock
        (its times and amounts written by ``time`` and ``number``)."""
        proc = self.process(snapshot.process, snapshot.version)
        timers = [
            {
                "id": t["id"],
                "kind": t["kind"],
                "state": t["state"],
                "task_id": t["task_id"],
                "due_at": t["due_at"],
                "status": t["status"],
                "fired_at": t["fired_at"],
                "level": (t["data"] or {}).get("level"),
            }
            for t in self.store.instance_timers(snapshot.id)
        ]
        clock = snapshot.sla
        dues = [t["due_at"] for t in timers] + [snapshot.created_at]
        cal = proc.calendar
        warnings = cal.warnings_for(min(dues), max(dues))
        for timer in timers:
            timer["provisional"] = bool(cal.provisional_years(timer["due_at"], timer["due_at"]))
        sla = None
        if clock is not None:
            provisional = bool(cal.provisional_years(clock.due_at, clock.due_at))
            sla = clock.to_json(time, number) | {"provisional": provisional}
        return {
            "instance_deadline": sla,
            "timers": timers,
            "calendar_warnings": warnings,
            "provisional_years": cal.provisional_years(min(dues), max(dues)),
        }


def _check_comment(comment: str | None) -> None:
    if comment is not None:
        check_text("comment", comment)


def _mask(values: dict[str, Any], secret: set[str]) -> dict[str, Any]:
    return {k: (HIDDEN if k in secret else v) for k, v in values.items()}


# Crockford's base32 in lower case: no i, l, o, u to misread, and in ASCII order, so ids
# sort as their numbers do.
_ID_DIGITS = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(now_ns: int | None = None) -> str:
    """An instance id: 8 base32 digits of the time in ms, then 8 random ones (40 bits).

    Time first so that new rows append at the end of every index keyed by id (instances,
    tasks, timers, task roles) instead of landing on a random page: at 100k instances a
    random id made each insert read and dirty pages all over the B-trees. The random part
    keeps ids unguessable and apart within one millisecond. 40 bits of ms wrap after
    about 35 years, which only costs locality once. Opaque: nothing reads the time back.
    """
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    value = (ms % (1 << 40)) << 40 | secrets.randbits(40)
    return "".join(_ID_DIGITS[(value >> shift) & 31] for shift in range(75, -1, -5))
