"""The org directory (``processes/org.yaml``): who holds which role, and who stands in for whom."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from engine.errors import DefinitionError, NotFound, WorkflowError
from engine.slots import people
from engine.validation import Frozen, parse_model
from engine.yamlsafe import Document

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


class UserSpec(Frozen):
    name: str
    roles: tuple[str, ...] = ()
    contacts: Contacts = Contacts()
    active: bool = True
    delegate: str | None = Field(
        default=None, description="Acts on this user's tasks while the user is not active."
    )


class OrgSpec(Frozen):
    org: str = Field(description="The organisation's name.")
    roles: dict[str, RoleSpec]
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
    """The loaded directory, with the lookups the engine and service need."""

    def __init__(self, spec: OrgSpec, file: str = "org.yaml") -> None:
        self.spec = spec
        self.file = file

    @property
    def roles(self) -> dict[str, RoleSpec]:
        return self.spec.roles

    @property
    def users(self) -> dict[str, UserSpec]:
        return self.spec.users

    def user(self, user_id: str) -> UserSpec:
        try:
            return self.spec.users[user_id]
        except KeyError:
            raise NotFound("user", user_id, "see 'python run.py users'") from None

    def actor(self, user_id: str) -> Actor:
        """The acting identity of ``user_id``; an inactive user cannot act at all."""
        user = self.user(user_id)
        if not user.active:
            hint = f"; their delegate is {user.delegate}" if user.delegate else ""
            raise WorkflowError(f"user {user_id!r} is not active and cannot act{hint}")
        stands_in = tuple(
            (uid, frozenset(u.roles))
            for uid, u in self.spec.users.items()
            if u.delegate == user_id and not u.active
        )
        return Actor(user_id, frozenset(user.roles), stands_in)

    def on_behalf(self, user_id: str) -> tuple[Actor, str | None]:
        """Who acts in ``user_id``'s name now: ``(actor, None)`` if they are present, else
        ``(delegate's actor, user_id)``; refused when nobody can.

        For work that names a person in a definition (a schedule's ``as:``): absence is a
        fact of the day, so the person's delegate stands in, as they do on tasks.
        """
        user = self.user(user_id)
        if user.active:
            return self.actor(user_id), None
        if user.delegate is None:
            raise WorkflowError(
                f"user {user_id!r} is not active and has no delegate; set 'delegate:' for "
                f"them in {self.file} or name another user"
            )
        stand_in = self.users.get(user.delegate)
        if stand_in is None or not stand_in.active:
            raise WorkflowError(
                f"user {user_id!r} is not active and their delegate {user.delegate!r} is not "
                f"active either; set another 'delegate:' for {user_id!r} in {self.file}"
            )
        return self.actor(user.delegate), user_id

    def holders(self, role: str, *, acting: bool = True) -> list[str]:
        """Users who hold ``role``; with ``acting``, absentees are replaced by their delegate."""
        out: list[str] = []
        for uid, u in self.spec.users.items():
            if role not in u.roles:
                continue
            if u.active:
                out.append(uid)
            elif acting and u.delegate and u.delegate in self.spec.users:
                out.append(u.delegate)
        return sorted(set(out))


def load_org(doc: Document) -> Org:
    """Validate an org document: every problem (unknown role, unknown delegate...) at once."""
    spec = parse_model(OrgSpec, doc)
    import re

    problems = []
    for rid in spec.roles:
        if not re.match(ID_PATTERN, rid):
            problems.append(doc.problem(("roles", rid), f"role id {rid!r} must match {ID_PATTERN}"))
    for uid, user in spec.users.items():
        if not re.match(ID_PATTERN, uid):
            problems.append(doc.problem(("users", uid), f"user id {uid!r} must match {ID_PATTERN}"))
        for i, role in enumerate(user.roles):
            if role not in spec.roles:
                problems.append(
                    doc.problem(
                        ("users", uid, "roles", i),
                        f"unknown role {role!r}; declare it under 'roles:'",
                    )
                )
        if user.delegate is not None:
            if user.delegate not in spec.users:
                problems.append(
                    doc.problem(("users", uid, "delegate"), f"unknown user {user.delegate!r}")
                )
            elif user.delegate == uid:
                problems.append(
                    doc.problem(("users", uid, "delegate"), "a user cannot delegate to themselves")
                )
    if problems:
        raise DefinitionError(problems)
    return Org(spec, doc.file)
