"""Who a task goes to: the YAML forms of an assignee, and the pure resolver behind them.

A task names people relative to the instance (the requester's manager, the head of a
department, a role within the requester's department, a user held in a variable) as well
as plain roles. :func:`resolve` turns those entries into the task's *slots* when the task
opens, with a reason for each that the task and the audit keep:

* a role slot is the plain role id (``finance``): any holder may act, as before;
* a person slot is ``user:<id>``; ``user:<id1>,<id2>`` is one slot any of them may fill.

The org is data handed in, never looked up, and ``now`` is passed in (delegations may be
limited to dates), so resolution is as pure as ``fire``. Every walk up the tree or the
reporting lines keeps a visited set: ``load_org`` refuses cycles, and an ``Org`` built
without it still cannot make the resolver hang.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Literal

from pydantic import Field, model_validator

from engine.org import Org
from engine.slots import people, user_slot
from engine.validation import Frozen


def person_slot(users: Iterable[str]) -> str:
    """The slot any one of ``users`` may fill, sorted so the same people give one slot."""
    return user_slot(*sorted(set(users)))


# --------------------------------------------------------------------------- the YAML


class Ref(Frozen):
    """Whom a relative assignee is relative to: ``requester``, ``{var: NAME}`` (a ``user``
    variable), ``{user: ID}`` or, where a department is meant, ``{department: ID}``.

    Under ``in:`` a ``{var: NAME}`` may also be a ``string`` variable holding a department
    id: the department of a record (a customer's branch in a register), not a person's."""

    requester: bool = False
    var: str | None = Field(
        default=None,
        description="A variable of type user; under `in:` also a string variable holding a "
        "department id.",
    )
    user: str | None = Field(default=None, description="A user id of org.yaml.")
    department: str | None = Field(default=None, description="A department id of org.yaml.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if data == "requester":
            return {"requester": True}
        if isinstance(data, str):
            raise ValueError(
                f"{data!r}: write requester, {{var: NAME}}, {{user: ID}} or {{department: ID}}"
            )
        return data

    @model_validator(mode="after")
    def _one(self) -> Ref:
        given = [k for k in ("var", "user", "department") if getattr(self, k) is not None]
        if len(given) + self.requester != 1:
            raise ValueError("give exactly one of requester, var, user or department")
        return self

    def describe(self) -> str:
        if self.requester:
            return "the requester"
        if self.var is not None:
            return f"variable {self.var}"
        if self.user is not None:
            return str(self.user)
        return f"department {self.department}"


class HeadOf(Frozen):
    """``head: {of: requester}``: the head of a person's main department."""

    of: Ref


class UpTo(Frozen):
    """Where a climb up the reporting lines stops: the first manager holding ``role``, or
    the one who heads ``department``."""

    role: str | None = None
    department: str | None = None

    @model_validator(mode="after")
    def _one(self) -> UpTo:
        if (self.role is None) == (self.department is None):
            raise ValueError("up_to needs exactly one of role or department")
        return self


KINDS = ("role", "requester", "manager", "head", "user", "user_var")


class Assignee(Frozen):
    """One entry of ``task.assignees``: exactly one of the kinds below.

    * ``role: R``: any holder of R (a role slot), or with ``in:`` the holders of R within a
      department (people); ``upward: true`` tries the departments above when none is there.
    * ``requester: true``: the requester.
    * ``manager: requester | {var: X} | {user: ID}``: that person's manager, ``levels: N``
      up, or the first one up the chain that holds a role or heads a department (``up_to``).
    * ``head: DEPT`` or ``head: {of: requester | {var: X} | {user: ID}}``: a head.
    * ``user: ID``: a named person; ``user_var: X``: the person held in a ``user`` variable.
    """

    role: str | None = Field(default=None, description="A role id of org.yaml.")
    in_: Ref | None = Field(
        default=None,
        alias="in",
        description="With role: only holders within this department, or the (main and other) "
        "departments of this person.",
    )
    upward: bool = Field(
        default=False,
        description="With role and in: when nobody holds the role there, the nearest "
        "department above where someone does.",
    )
    requester: Literal[True] | None = Field(default=None, description="The requester.")
    manager: Ref | None = Field(default=None, description="This person's manager.")
    levels: int | None = Field(
        default=None, ge=1, le=20, description="With manager: how many levels up (default 1)."
    )
    up_to: UpTo | None = Field(
        default=None,
        description="With manager: climb until a manager holds this role or heads this department.",
    )
    head: str | HeadOf | None = Field(
        default=None, description="A department id, or {of: PERSON}: the head of their department."
    )
    user: str | None = Field(default=None, description="A user id of org.yaml.")
    user_var: str | None = Field(default=None, description="A variable of type user.")

    @model_validator(mode="after")
    def _one_kind(self) -> Assignee:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"an assignee needs exactly one of {', '.join(KINDS)}")
        if (self.in_ is not None or self.upward) and self.role is None:
            raise ValueError("'in' and 'upward' are only for role")
        if self.upward and self.in_ is None:
            raise ValueError("'upward' needs 'in'")
        if (self.levels is not None or self.up_to is not None) and self.manager is None:
            raise ValueError("'levels' and 'up_to' are only for manager")
        if self.levels is not None and self.up_to is not None:
            raise ValueError("give 'levels' or 'up_to', not both")
        if self.manager is not None and self.manager.department is not None:
            raise ValueError("manager: a department has no manager; use head: DEPARTMENT")
        if isinstance(self.head, HeadOf) and self.head.of.department is not None:
            raise ValueError("head: {of: {department: D}} is head: D")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    def describe(self) -> str:
        """The rule in words, for reasons."""
        if self.role is not None:
            where = f" in {self.in_.describe()}" if self.in_ is not None else ""
            return f"role {self.role}{where}"
        if self.requester:
            return "the requester"
        if self.manager is not None:
            whose = self.manager.describe()
            if self.up_to is not None:
                stop = self.up_to.role or f"head of {self.up_to.department}"
                return f"manager of {whose} up to {stop}"
            n = self.levels or 1
            return f"manager of {whose}" + (f", {n} levels up" if n > 1 else "")
        if self.head is not None:
            target = self.head if isinstance(self.head, str) else self.head.of.describe()
            return f"head of {target}"
        if self.user is not None:
            return f"user {self.user}"
        return f"user in variable {self.user_var}"


class Fallback(Frozen):
    """``{role: R}`` (a role slot) or ``{skip: ACTION}`` (take ACTION as the system)."""

    role: str | None = None
    skip: str | None = Field(default=None, description="The action taken when skipping.")

    @model_validator(mode="after")
    def _one(self) -> Fallback:
        if (self.role is None) == (self.skip is None):
            raise ValueError("a fallback needs exactly one of role or skip")
        return self


IfNone = Literal["manager_up", "skip"] | Fallback
"""What to do when an entry finds nobody: ``manager_up`` climbs on from where it failed,
``{role: R}`` gives the task to a role, ``skip`` / ``{skip: ACTION}`` skips the step."""


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class Slot:
    """One slot of a task, with why it went where it did."""

    slot: str
    reason: str

    @property
    def people(self) -> tuple[str, ...] | None:
        return people(self.slot) or None


@dataclass(frozen=True)
class Resolution:
    """The task's slots, or a skip; with the notes the audit keeps.

    ``skip`` is the action to take in place of asking anyone (``if_none: skip``);
    ``requester_in`` names the slots the requester could fill (four-eyes is the
    authorizer's to enforce, this only reports it); ``unresolved`` lists entries for which
    nobody and no fallback was found (the caller refuses to open such a task).
    """

    slots: tuple[Slot, ...] = ()
    skip: str | None = None
    skip_reason: str = ""
    requester_in: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()  # entries skipped while others still ask someone

    @property
    def roles(self) -> tuple[str, ...]:
        """The slots as ``TaskRecord.roles`` holds them."""
        return tuple(s.slot for s in self.slots)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"slots": [{"slot": s.slot, "reason": s.reason} for s in self.slots]}
        if self.skip is not None:
            out["skip"] = {"action": self.skip, "reason": self.skip_reason}
        if self.requester_in:
            out["requester_in"] = list(self.requester_in)
        if self.unresolved:
            out["unresolved"] = list(self.unresolved)
        if self.dropped:
            out["dropped"] = list(self.dropped)
        return out


@dataclass(frozen=True)
class Context:
    """What resolution reads from the instance: the requester and the variables."""

    requester: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    tz: tzinfo | None = None  # the zone dated delegations are read in


# --------------------------------------------------------------------------- resolving


@dataclass(frozen=True)
class _Found:
    people: tuple[str, ...]  # before delegates
    reason: str
    climb: tuple[tuple[str, ...], ...] = ()  # for manager_up: further candidates, in order


class _Resolver:
    def __init__(self, org: Org, ctx: Context, now: datetime) -> None:
        self.org = org
        self.ctx = ctx
        self.now = now

    # a person, a department -------------------------------------------------

    def person(self, ref: Ref) -> tuple[str | None, str]:
        if ref.requester:
            return self.ctx.requester, "the requester"
        if ref.user is not None:
            return ref.user, ref.user
        assert ref.var is not None
        value = self.ctx.variables.get(ref.var)
        if not isinstance(value, str) or value not in self.org.users:
            return None, f"variable {ref.var} holds no user of org.yaml ({value!r})"
        return value, f"{value} (variable {ref.var})"

    def departments(self, ref: Ref) -> tuple[list[str], str]:
        if ref.department is not None:
            return [ref.department], f"department {ref.department}"
        if ref.var is not None:
            value = self.ctx.variables.get(ref.var)
            if (
                isinstance(value, str)
                and value in self.org.departments
                and value not in self.org.users
            ):
                return [value], f"department {value} (variable {ref.var})"
        who, why = self.person(ref)
        if who is None:
            return [], why
        depts = list(self.org.users[who].member_of)
        return depts, f"department of {why}" if depts else f"{why} has no department"

    # one entry ----------------------------------------------------------------

    def find(self, entry: Assignee) -> _Found:
        org = self.org
        if entry.role is not None and entry.in_ is not None:
            depts, where = self.departments(entry.in_)
            people: tuple[str, ...] = ()
            if entry.upward:
                for dept in depts:
                    level = next(
                        (hs for up in org.lineage(dept) if (hs := org.holders_in(entry.role, up))),
                        [],
                    )
                    if level:
                        people = tuple(level)
                        break
            else:
                people = tuple(sorted({p for d in depts for p in org.holders_in(entry.role, d)}))
            climb = tuple((h,) for h in self._heads_above(depts[0])) if depts else ()
            return _Found(people, f"{entry.role} in {where}", climb)
        if entry.requester:
            who = self.ctx.requester
            return _Found((who,), "the requester", self._chain(who))
        if entry.user is not None:
            return _Found((entry.user,), f"named user {entry.user}", self._chain(entry.user))
        if entry.user_var is not None:
            who, why = self.person(Ref(var=entry.user_var))
            return _Found((who,) if who else (), why, self._chain(who) if who else ())
        if entry.head is not None:
            if isinstance(entry.head, str):
                dept: str | None = entry.head
                where = f"head of {dept}"
            else:
                depts, where0 = self.departments(entry.head.of)
                dept = depts[0] if depts else None
                where = f"head of {dept} ({where0})" if dept else where0
            if dept is None:
                return _Found((), where)
            head = org.head(dept)
            climb = tuple((h,) for h in self._heads_above(dept))
            return _Found((head,) if head else (), where if head else f"{dept} has no head", climb)
        assert entry.manager is not None
        base, why = self.person(entry.manager)
        if base is None:
            return _Found((), why)
        chain = org.chain(base)
        if entry.up_to is not None:
            stop = entry.up_to
            for i, boss in enumerate(chain):
                if (stop.role is not None and org.holds(boss, stop.role)) or (
                    stop.department is not None and org.head(stop.department) == boss
                ):
                    return _Found(
                        (boss,),
                        f"{entry.describe()}: {boss}",
                        tuple((b,) for b in chain[i + 1 :]),
                    )
            return _Found((), f"no manager of {why} up the chain matches")
        n = entry.levels or 1
        if len(chain) < n:
            return _Found((), f"{why} has fewer than {n} managers above them")
        boss = chain[n - 1]
        reason = self.org.manager_why(base) if n == 1 else f"{entry.describe()}: {boss}"
        return _Found((boss,), reason, tuple((b,) for b in chain[n:]))

    def _chain(self, who: str) -> tuple[tuple[str, ...], ...]:
        return tuple((b,) for b in self.org.chain(who))

    def _heads_above(self, dept: str) -> list[str]:
        """Heads of the departments above ``dept``, nearest first (distinct)."""
        out: list[str] = []
        for up in self.org.lineage(dept)[1:]:
            head = self.org.head(up)
            if head is not None and head not in out:
                out.append(head)
        return out

    # present people -----------------------------------------------------------

    def present(self, people: Iterable[str]) -> tuple[list[str], list[str]]:
        """Who acts for ``people`` now (delegates for the absent), and the notes why."""
        acting: list[str] = []
        notes: list[str] = []
        for person in people:
            who, why = self.org.stand_in(person, self.now, self.ctx.tz)
            if why:
                notes.append(why)
            if who is not None and who not in acting:
                acting.append(who)
        return acting, notes


def resolve(
    org: Org,
    assignees: Iterable[Assignee],
    ctx: Context,
    now: datetime,
    *,
    mode: str = "any",
    if_none: Iterable[IfNone] = (),
    default_skip: str | None = None,
) -> Resolution:
    """The slots of a task with ``assignees`` as of ``now`` (pure; see the module doc).

    Mode ``any``: one slot per entry that finds someone, and ``if_none`` only when no entry
    does. Modes ``all`` and ``sequence``: one slot per entry, each entry that finds nobody
    goes through ``if_none`` on its own (a fallback to ``skip`` drops the entry). The
    fallbacks are tried in order; ``default_skip`` is the action a plain ``skip`` takes.
    """
    r = _Resolver(org, ctx, now)
    fallbacks = tuple(if_none)
    per_entry = mode != "any"
    slots: list[Slot] = []
    missing: list[tuple[Assignee, _Found, list[str]]] = []
    for entry in assignees:
        if entry.role is not None and entry.in_ is None:
            acting = org.holders(entry.role, now=now, tz=ctx.tz)
            if acting:
                slots.append(Slot(entry.role, f"role {entry.role}: any holder"))
            else:
                missing.append((entry, _Found((), f"nobody holds {entry.role} now"), []))
            continue
        found = r.find(entry)
        acting, notes = r.present(found.people)
        if acting:
            why = "; ".join([f"{entry.describe()}: {found.reason}", *notes])
            slots.append(Slot(person_slot(acting), why))
        else:
            missing.append((entry, found, notes))
    skips: list[tuple[str, str]] = []
    unresolved: list[str] = []
    if missing and (per_entry or not slots):
        for entry, found, notes in missing:
            failed = "; ".join([f"{entry.describe()}: {found.reason}", *notes, "nobody found"])
            outcome = _fall_back(r, entry, found, fallbacks, failed, default_skip)
            if isinstance(outcome, Slot):
                slots.append(outcome)
            elif outcome is not None:
                skips.append(outcome)
            else:
                unresolved.append(failed)
    merged: list[Slot] = []
    dropped: list[str] = []
    for slot in slots:
        twin = next((s for s in merged if s.slot == slot.slot), None)
        if twin is None:
            merged.append(slot)
        elif per_entry:  # one person cannot sign twice: asking them again would block the task
            dropped.append(f"{slot.reason}; already asked ({twin.slot})")
    requester_in = tuple(
        s.slot for s in merged if ctx.requester in (s.people or ()) or _role_of(org, s, ctx)
    )
    skip, skip_reason = (None, "")
    if not merged and skips and not unresolved:
        skip, skip_reason = skips[0]
    if merged:
        dropped += [why for _, why in skips]
    if merged and not per_entry:
        unresolved = []  # mode any: someone was found, the rest does not matter
    return Resolution(tuple(merged), skip, skip_reason, requester_in, tuple(unresolved), dropped)


def _role_of(org: Org, slot: Slot, ctx: Context) -> bool:
    user = org.users.get(ctx.requester)
    return slot.people is None and user is not None and slot.slot in user.roles


def _fall_back(
    r: _Resolver,
    entry: Assignee,
    found: _Found,
    fallbacks: tuple[IfNone, ...],
    failed: str,
    default_skip: str | None,
) -> Slot | tuple[str, str] | None:
    """The first fallback that gives someone (a slot) or a skip (action, reason)."""
    for fb in fallbacks:
        if fb == "manager_up":
            for candidates in found.climb:
                acting, notes = r.present(candidates)
                if acting:
                    why = "; ".join([failed, f"next manager up: {', '.join(candidates)}", *notes])
                    return Slot(person_slot(acting), why)
            continue
        if fb == "skip" or (isinstance(fb, Fallback) and fb.skip is not None):
            action = default_skip if fb == "skip" else fb.skip  # type: ignore[union-attr]
            if action is None:
                continue
            return action, f"{failed}; step skipped ({action})"
        assert isinstance(fb, Fallback) and fb.role is not None
        if r.org.holders(fb.role, now=r.now, tz=r.ctx.tz):
            return Slot(fb.role, f"{failed}; fallback to role {fb.role}")
    return None
