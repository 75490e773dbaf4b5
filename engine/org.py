"""The org directory (``processes/org.yaml``): who holds which role, and who stands in for whom."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from engine.errors import DefinitionError, NotFound, Problem, WorkflowError
from engine.slots import people
from engine.validation import Frozen, parse_model
from engine.yamlsafe import Document, PathKey

ID_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"


class RoleSpec(Frozen):
    title: str = ""
    description: str = ""


HHMM = r"([01][0-9]|2[0-3]):[0-5][0-9]"
QUIET_PATTERN = rf"^{HHMM}-{HHMM}$"


class Contacts(Frozen):
    email: str | None = None
    phone: str | None = None
    wecom: str | None = None
    dingtalk: str | None = None
    lang: Literal["en", "zh"] | None = Field(
        default=None, description="Language of this person's notifications (default: en)."
    )
    channels: tuple[str, ...] | None = Field(
        default=None,
        description="Only these channels (names in channels.yaml) reach this person "
        "(default: every channel routed to them).",
    )
    quiet_hours: str | None = Field(
        default=None,
        pattern=QUIET_PATTERN,
        description="'HH:MM-HH:MM' local time (may wrap midnight, e.g. '22:00-08:00'): "
        "only escalations are sent then; everything else waits until it ends.",
    )
    tz: str | None = Field(
        default=None,
        description="IANA time zone of quiet_hours (default: the display zone, SHENPI_TZ).",
    )

    @field_validator("quiet_hours")
    @classmethod
    def _not_empty_range(cls, value: str | None) -> str | None:
        if value is not None and value[:5] == value[6:]:
            raise ValueError("quiet_hours starts and ends at the same time; write e.g. 22:00-08:00")
        return value

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                raise ValueError(
                    f"{value!r} is not a time zone; use an IANA name such as 'Asia/Shanghai'"
                ) from None
        return value

    def quiet_until(self, now: datetime, default_tz: tzinfo) -> datetime | None:
        """When this person's quiet hours around ``now`` end, or None if ``now`` is not quiet.

        ``now`` is passed in (the dispatcher's clock); the range is read in ``tz`` or else
        ``default_tz`` and may wrap midnight.
        """
        if self.quiet_hours is None:
            return None
        zone = ZoneInfo(self.tz) if self.tz else default_tz
        local = now.astimezone(zone)
        start, end = (time.fromisoformat(part) for part in self.quiet_hours.split("-"))
        clock = local.time().replace(tzinfo=None)
        day = local.date()
        if start < end:
            quiet = start <= clock < end
        else:
            quiet = clock >= start or clock < end
            if clock >= start:
                day += timedelta(days=1)
        if not quiet:
            return None
        until = datetime.combine(day, end, tzinfo=zone).astimezone(now.tzinfo)
        return until if until > now else None


class Delegation(Frozen):
    """Who stands in for a user while they are away, optionally only between two dates.

    The dates are inclusive days, read in the zone the caller gives (the process calendar's
    zone for task assignment): an absence "until 2026-10-07" covers all of that day.
    """

    to: str = Field(description="The user who stands in.")
    from_: date | None = Field(
        default=None, alias="from", description="First day the delegate stands in (inclusive)."
    )
    until: date | None = Field(
        default=None, description="Last day the delegate stands in (inclusive)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Delegation:
        if self.from_ is not None and self.until is not None and self.from_ > self.until:
            raise ValueError("'from' is after 'until'")
        return self

    def applies(self, now: datetime | None, tz: tzinfo | None = None) -> bool:
        """Whether the delegation holds at ``now`` (always, when no time is known)."""
        if now is None or (self.from_ is None and self.until is None):
            return True
        day = now.astimezone(tz).date() if tz is not None else now.date()
        if self.from_ is not None and day < self.from_:
            return False
        return self.until is None or day <= self.until

    def window(self) -> str:
        """The dates in words, for reasons and listings ('' when always)."""
        parts = []
        if self.from_ is not None:
            parts.append(f"from {self.from_.isoformat()}")
        if self.until is not None:
            parts.append(f"until {self.until.isoformat()}")
        return " ".join(parts)


class UserSpec(Frozen):
    name: str
    roles: tuple[str, ...] = Field(
        default=(), description="Roles held everywhere (tasks for the role reach this user)."
    )
    department: str | None = Field(default=None, description="The user's one department.")
    departments: tuple[str, ...] = Field(
        default=(), description="The user's departments, the first being the main one."
    )
    department_roles: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Roles held only within a department: department id -> roles. They count "
        "for assignees that ask for a role in that department, never for a plain role task.",
    )
    manager: str | None = Field(
        default=None,
        description="The user's manager (default: the head of the main department, or the "
        "next head up when the user is that head).",
    )
    contacts: Contacts = Contacts()
    active: bool = True
    delegate: str | Delegation | None = Field(
        default=None,
        description="Acts on this user's tasks while the user is not active: a user id, or "
        "{to: user, from: date, until: date} to limit it to those days.",
    )

    @property
    def member_of(self) -> tuple[str, ...]:
        """The user's departments, main one first."""
        if self.department is None:
            return self.departments
        return (self.department, *(d for d in self.departments if d != self.department))

    @property
    def delegation(self) -> Delegation | None:
        if isinstance(self.delegate, str):
            return Delegation(to=self.delegate)
        return self.delegate

    @property
    def delegate_id(self) -> str | None:
        """The delegate's id whatever the dates (listings, validation)."""
        rule = self.delegation
        return rule.to if rule is not None else None

    def delegate_on(self, now: datetime | None, tz: tzinfo | None = None) -> str | None:
        """Who stands in for this user at ``now``: None if present or nobody does."""
        if self.active:
            return None
        rule = self.delegation
        return rule.to if rule is not None and rule.applies(now, tz) else None


class DepartmentSpec(Frozen):
    """A department of the tree: its parent (none at the top) and its head (负责人)."""

    name: str
    parent: str | None = Field(default=None, description="The department above; none at the top.")
    head: str | None = Field(
        default=None, description="The department's head: a user who is a member of it."
    )
    description: str = ""


class OrgSpec(Frozen):
    org: str = Field(description="The organisation's name.")
    roles: dict[str, RoleSpec]
    departments: dict[str, DepartmentSpec] = Field(
        default_factory=dict, description="The department tree, by department id."
    )
    users: dict[str, UserSpec]


@dataclass(frozen=True)
class Actor:
    """Who is acting: the person, their own roles, and the absent people they stand in for."""

    user: str
    roles: frozenset[str]
    stands_in_for: tuple[tuple[str, frozenset[str]], ...] = ()

    def identities(self, slot: str) -> list[str | None]:
        """Ways this actor may fill ``slot`` (a role id or ``user:<id>[,<id>]``, see
        ``engine.slots``): ``None`` as themselves, else the id of the absentee they stand in
        for."""
        named = people(slot)
        if named:
            ways: list[str | None] = [None] if self.user in named else []
            return ways + [absent for absent, _ in self.stands_in_for if absent in named]
        ways = [None] if slot in self.roles else []
        ways += [absent for absent, roles in self.stands_in_for if slot in roles]
        return ways

    def task_keys(self) -> set[str]:
        """The ``task_roles`` keys of the tasks this actor may find in their list: their
        roles and their name, and those of everyone they stand in for."""
        keys = set(self.roles) | {f"user:{self.user}"}
        for absent, roles in self.stands_in_for:
            keys |= set(roles) | {f"user:{absent}"}
        return keys


class Org:
    """The loaded directory, with the lookups the engine and service need.

    The department tree and the reporting lines are indexed once here; lookups that walk
    them guard against cycles themselves too (``load_org`` refuses cycles, but an ``Org``
    built directly from a spec is not validated).
    """

    def __init__(self, spec: OrgSpec, file: str = "org.yaml") -> None:
        self.spec = spec
        self.file = file
        members: dict[str, list[str]] = {d: [] for d in spec.departments}
        for uid, user in spec.users.items():
            for dept in user.member_of:
                members.setdefault(dept, []).append(uid)
        self._members = {d: tuple(sorted(us)) for d, us in members.items()}
        self._managers = {uid: self._derive_manager(uid) for uid in spec.users}

    @property
    def roles(self) -> dict[str, RoleSpec]:
        return self.spec.roles

    @property
    def users(self) -> dict[str, UserSpec]:
        return self.spec.users

    @property
    def departments(self) -> dict[str, DepartmentSpec]:
        return self.spec.departments

    def user(self, user_id: str) -> UserSpec:
        try:
            return self.spec.users[user_id]
        except KeyError:
            raise NotFound("user", user_id, "see 'python run.py users'") from None

    # ------------------------------------------------------------------ the tree

    def members(self, dept: str) -> tuple[str, ...]:
        """Users who list ``dept`` among their departments (sorted)."""
        return self._members.get(dept, ())

    def head(self, dept: str) -> str | None:
        spec = self.spec.departments.get(dept)
        return spec.head if spec is not None else None

    def lineage(self, dept: str) -> list[str]:
        """``dept`` and the departments above it, nearest first (stops at a cycle)."""
        out: list[str] = []
        current: str | None = dept
        while current is not None and current in self.spec.departments and current not in out:
            out.append(current)
            current = self.spec.departments[current].parent
        return out

    def holds_in(self, user_id: str, role: str, dept: str) -> bool:
        """Whether ``user_id`` holds ``role`` within ``dept``: a member holding it everywhere,
        or anyone holding it for that department (``department_roles``)."""
        user = self.spec.users.get(user_id)
        if user is None:
            return False
        if role in user.department_roles.get(dept, ()):
            return True
        return role in user.roles and dept in user.member_of

    def holders_in(self, role: str, dept: str) -> list[str]:
        """Users holding ``role`` within ``dept`` (present or not; see :meth:`holds_in`)."""
        return sorted(uid for uid in self.spec.users if self.holds_in(uid, role, dept))

    def holds(self, user_id: str, role: str) -> bool:
        """Whether ``user_id`` holds ``role`` everywhere or within any department."""
        user = self.spec.users.get(user_id)
        if user is None:
            return False
        return role in user.roles or any(role in rs for rs in user.department_roles.values())

    # ------------------------------------------------------------------ reporting lines

    def _derive_manager(self, user_id: str) -> str | None:
        user = self.spec.users[user_id]
        if user.manager is not None:
            return user.manager
        if not user.member_of:
            return None
        for dept in self.lineage(user.member_of[0]):
            head = self.spec.departments[dept].head
            if head is not None and head != user_id:
                return head
        return None

    def manager(self, user_id: str) -> str | None:
        """The user's manager: ``manager:`` if given, else the head of their main department,
        or of the nearest department above it whose head is someone else."""
        return self._managers.get(user_id)

    def manager_why(self, user_id: str) -> str:
        """Where :meth:`manager` comes from, in words (for the audit)."""
        user = self.spec.users.get(user_id)
        if user is None or self._managers.get(user_id) is None:
            return "no manager"
        if user.manager is not None:
            return f"manager of {user_id} (org.yaml)"
        boss = self._managers[user_id]
        dept = next(d for d in self.lineage(user.member_of[0]) if self.head(d) == boss)
        return f"manager of {user_id} (head of {dept})"

    def chain(self, user_id: str) -> list[str]:
        """The user's managers, nearest first, up to the top (stops at a cycle)."""
        out: list[str] = []
        seen = {user_id}
        current = self._managers.get(user_id)
        while current is not None and current not in seen:
            out.append(current)
            seen.add(current)
            current = self._managers.get(current)
        return out

    # ------------------------------------------------------------------ who acts

    def stand_in(
        self, user_id: str, now: datetime | None = None, tz: tzinfo | None = None
    ) -> tuple[str | None, str]:
        """Who acts for ``user_id`` at ``now``: ``(user_id, why)`` if present, the active
        delegate if the user is away and the delegation holds, else ``(None, why)``.

        One level deep, as everywhere: a delegate who is away too stands in for nobody.
        """
        user = self.spec.users.get(user_id)
        if user is None:
            return None, f"{user_id} is not in {self.file}"
        if user.active:
            return user_id, ""
        rule = user.delegation
        if rule is None:
            return None, f"{user_id} is away and has no delegate"
        window = rule.window()
        if not rule.applies(now, tz):
            return None, (
                f"{user_id} is away and their delegation to {rule.to} ({window}) "
                "does not cover this day"
            )
        stand = self.spec.users.get(rule.to)
        if stand is None or not stand.active:
            return None, f"{user_id} is away and their delegate {rule.to} is away too"
        dates = f" ({window})" if window else ""
        return rule.to, f"{user_id} is away; their delegate {rule.to} stands in{dates}"

    def actor(self, user_id: str, now: datetime | None = None, tz: tzinfo | None = None) -> Actor:
        """The acting identity of ``user_id``; an inactive user cannot act at all.

        With ``now``, a delegation limited to dates counts only on those days; without it,
        every delegation counts (callers that know the time pass it, and the zone the
        dates are read in: the process calendar's).
        """
        user = self.user(user_id)
        if not user.active:
            hint = f"; their delegate is {user.delegate_id}" if user.delegate_id else ""
            raise WorkflowError(f"user {user_id!r} is not active and cannot act{hint}")
        stands_in = tuple(
            (uid, frozenset(u.roles))
            for uid, u in self.spec.users.items()
            if u.delegate_on(now, tz) == user_id
        )
        return Actor(user_id, frozenset(user.roles), stands_in)

    def on_behalf(self, user_id: str, now: datetime | None = None) -> tuple[Actor, str | None]:
        """Who acts in ``user_id``'s name now: ``(actor, None)`` if they are present, else
        ``(delegate's actor, user_id)``; refused when nobody can.

        For work that names a person in a definition (a schedule's ``as:``): absence is a
        fact of the day, so the person's delegate stands in, as they do on tasks.
        """
        user = self.user(user_id)
        if user.active:
            return self.actor(user_id, now), None
        delegate = user.delegate_on(now)
        if delegate is None:
            why = "has no delegate" if user.delegate_id is None else "has no delegate today"
            raise WorkflowError(
                f"user {user_id!r} is not active and {why}; set 'delegate:' for "
                f"them in {self.file} or name another user"
            )
        stand_in = self.users.get(delegate)
        if stand_in is None or not stand_in.active:
            raise WorkflowError(
                f"user {user_id!r} is not active and their delegate {delegate!r} is not "
                f"active either; set another 'delegate:' for {user_id!r} in {self.file}"
            )
        return self.actor(delegate, now), user_id

    def holders(
        self,
        role: str,
        *,
        acting: bool = True,
        now: datetime | None = None,
        tz: tzinfo | None = None,
    ) -> list[str]:
        """Users who hold ``role``; with ``acting``, absentees are replaced by their delegate."""
        out: list[str] = []
        for uid, u in self.spec.users.items():
            if role not in u.roles:
                continue
            if u.active:
                out.append(uid)
            elif acting:
                delegate = u.delegate_on(now, tz)
                if delegate is not None and delegate in self.spec.users:
                    out.append(delegate)
        return sorted(set(out))


def load_org(doc: Document) -> Org:
    """Validate an org document: every problem (unknown role, department or user, a cycle
    in the reporting lines, a head outside their department...) at once."""
    spec = parse_model(OrgSpec, doc)
    problems: list[Problem] = []
    add = lambda path, message: problems.append(doc.problem(path, message))  # noqa: E731
    for rid in spec.roles:
        if not re.match(ID_PATTERN, rid):
            add(("roles", rid), f"role id {rid!r} must match {ID_PATTERN}")
    departments = spec.departments
    for did, dept in departments.items():
        path: PathKey = ("departments", did)
        if not re.match(ID_PATTERN, did):
            add(path, f"department id {did!r} must match {ID_PATTERN}")
        if dept.parent is not None and dept.parent not in departments:
            add((*path, "parent"), _unknown_department(dept.parent, departments))
        if dept.head is not None:
            head = spec.users.get(dept.head)
            if head is None:
                add((*path, "head"), f"unknown user {dept.head!r}")
            elif did not in head.member_of:
                add(
                    (*path, "head"),
                    f"head {dept.head!r} is not a member of {did!r}; add {did!r} to their "
                    "'departments'",
                )
    for uid, user in spec.users.items():
        path = ("users", uid)
        if not re.match(ID_PATTERN, uid):
            add(path, f"user id {uid!r} must match {ID_PATTERN}")
        for i, role in enumerate(user.roles):
            if role not in spec.roles:
                add((*path, "roles", i), f"unknown role {role!r}; declare it under 'roles:'")
        if user.department is not None and user.department not in departments:
            add((*path, "department"), _unknown_department(user.department, departments))
        for i, did in enumerate(user.departments):
            if did not in departments:
                add((*path, "departments", i), _unknown_department(did, departments))
        if user.department is not None and user.departments:
            add((*path, "departments"), "give 'department' or 'departments', not both")
        if len(set(user.departments)) != len(user.departments):
            add((*path, "departments"), "each department can be listed once")
        for did, roles in user.department_roles.items():
            if did not in departments:
                add((*path, "department_roles", did), _unknown_department(did, departments))
            for i, role in enumerate(roles):
                if role not in spec.roles:
                    add(
                        (*path, "department_roles", did, i),
                        f"unknown role {role!r}; declare it under 'roles:'",
                    )
        if user.manager is not None:
            if user.manager not in spec.users:
                add((*path, "manager"), f"unknown user {user.manager!r}")
            elif user.manager == uid:
                add((*path, "manager"), "a user cannot be their own manager")
        target = user.delegate_id
        if target is not None:
            dpath: PathKey = (*path, "delegate")
            if not isinstance(user.delegate, str):
                dpath = (*dpath, "to")
            if target not in spec.users:
                add(dpath, f"unknown user {target!r}")
            elif target == uid:
                add(dpath, "a user cannot delegate to themselves")
    problems += _department_cycles(doc, spec)
    if problems:
        raise DefinitionError(problems)
    org = Org(spec, doc.file)
    cycles = _manager_cycles(doc, org)
    if cycles:
        raise DefinitionError(cycles)
    return org


def _unknown_department(did: str, departments: Mapping[str, DepartmentSpec]) -> str:
    known = ", ".join(sorted(departments)) or "none; declare them under 'departments:'"
    return f"unknown department {did!r}; departments are: {known}"


def _loops(starts: Iterable[str], up: Callable[[str], str | None]) -> list[list[str]]:
    """Each cycle of ``up`` links met walking up from ``starts``, once, as a closed loop
    from its smallest member (``[a, b, a]``): departments' parents and users' managers
    are both chains that must end at a top, and both report a cycle the same way."""
    loops: list[list[str]] = []
    reported: set[str] = set()
    for start in starts:
        path: list[str] = []
        current: str | None = start
        while current is not None and current not in path:
            path.append(current)
            current = up(current)
        if current is None:
            continue
        cycle = path[path.index(current) :]
        if reported & set(cycle):
            continue
        reported |= set(cycle)
        first = cycle.index(min(cycle))
        loops.append(cycle[first:] + cycle[:first] + [cycle[first]])
    return loops


def _department_cycles(doc: Document, spec: OrgSpec) -> list[Problem]:
    """One problem per cycle of ``parent`` links, at the parent key of its first member."""
    departments = spec.departments

    def parent(did: str) -> str | None:
        return departments[did].parent if did in departments else None

    return [
        doc.problem(
            ("departments", loop[0], "parent"),
            f"departments form a cycle: {' -> '.join(loop)} (each 'parent' must lead "
            "up to a top department)",
        )
        for loop in _loops(departments, parent)
    ]


def _manager_cycles(doc: Document, org: Org) -> list[Problem]:
    """One problem per cycle of reporting lines (explicit or derived managers), at the
    ``manager`` key of an explicit link in it (a derived one cannot close a cycle alone)."""
    problems = []
    for loop in _loops(org.users, org.manager):
        explicit = sorted(u for u in loop[:-1] if org.users[u].manager is not None)
        where: PathKey = ("users", explicit[0], "manager") if explicit else ("users", loop[0])
        problems.append(
            doc.problem(
                where,
                f"reporting lines form a cycle: {' -> '.join(loop)} (set 'manager:' so the "
                "chain ends at the top)",
            )
        )
    return problems
