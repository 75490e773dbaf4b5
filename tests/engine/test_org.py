"""Who acts in an absent user's name: the delegate, or nobody (and then a clear reason)."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from engine.errors import DefinitionError, NotFound, WorkflowError
from engine.org import Contacts, Org, load_org
from engine.yamlsafe import load_text

from .conftest import ORG_YAML


def test_a_present_user_acts_in_their_own_name(org: Org) -> None:
    actor, absent = org.on_behalf("bob")
    assert (actor.user, absent) == ("bob", None)


def test_an_absent_user_is_stood_in_for_by_their_delegate(org: Org) -> None:
    actor, absent = org.on_behalf("dan")
    assert (actor.user, absent) == ("eve", "dan")
    assert dict(actor.stands_in_for)["dan"] == frozenset({"gm"})


def test_nobody_acts_for_an_absent_user_without_an_active_delegate() -> None:
    text = ORG_YAML.replace(
        "  fay: {name: Fay, roles: [cfo]}",
        "  fay: {name: Fay, roles: [cfo], active: false}\n"
        "  hal: {name: Hal, roles: [gm], active: false, delegate: fay}\n"
        "  ivy: {name: Ivy, roles: [gm], active: false}",
    )
    org = load_org(load_text(text, "org.yaml"))
    with pytest.raises(
        WorkflowError, match=r"'ivy' is not active and has no delegate; .*org\.yaml"
    ):
        org.on_behalf("ivy")
    with pytest.raises(WorkflowError, match="their delegate 'fay' is not active either"):
        org.on_behalf("hal")
    with pytest.raises(NotFound, match="unknown user 'ghost'"):
        org.on_behalf("ghost")


# ---------------------------------------------------------------------- quiet hours

SH = ZoneInfo("Asia/Shanghai")


def quiet(hours: str, tz: str | None = None) -> Contacts:
    return Contacts(quiet_hours=hours, tz=tz)


def test_quiet_hours_across_midnight_end_the_next_morning() -> None:
    night = quiet("22:00-08:00")
    assert night.quiet_until(datetime(2026, 10, 8, 23, 0, tzinfo=SH), SH) == datetime(
        2026, 10, 9, 8, 0, tzinfo=SH
    )
    assert night.quiet_until(datetime(2026, 10, 9, 7, 59, tzinfo=SH), SH) == datetime(
        2026, 10, 9, 8, 0, tzinfo=SH
    )
    assert night.quiet_until(datetime(2026, 10, 9, 8, 0, tzinfo=SH), SH) is None
    assert night.quiet_until(datetime(2026, 10, 9, 21, 59, tzinfo=SH), SH) is None


def test_quiet_hours_within_a_day_and_in_a_personal_zone() -> None:
    lunch = quiet("12:00-13:30")
    assert lunch.quiet_until(datetime(2026, 10, 9, 12, 15, tzinfo=SH), SH) == datetime(
        2026, 10, 9, 13, 30, tzinfo=SH
    )
    assert lunch.quiet_until(datetime(2026, 10, 9, 11, 59, tzinfo=SH), SH) is None
    # 15:00 in Shanghai is 08:00 in Berlin (summer time): still quiet there until 09:00
    berlin = quiet("22:00-09:00", "Europe/Berlin")
    assert berlin.quiet_until(datetime(2026, 9, 30, 14, 0, tzinfo=SH), SH) == datetime(
        2026, 9, 30, 15, 0, tzinfo=SH
    )
    assert quiet("22:00-09:00").quiet_until(datetime(2026, 9, 30, 14, 0, tzinfo=SH), SH) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('"22:00"', "should match pattern"),
        ('"24:00-08:00"', "should match pattern"),
        ('"9:00-17:00"', "should match pattern"),
        ('"08:00-08:00"', "starts and ends at the same time"),
    ],
)
def test_a_bad_quiet_hours_value_is_reported_with_its_place(value: str, reason: str) -> None:
    text = ORG_YAML.replace(
        "  ann: {name: Ann, roles: [clerk]}",
        f"  ann: {{name: Ann, roles: [clerk], contacts: {{quiet_hours: {value}}}}}",
    )
    with pytest.raises(DefinitionError, match=rf"^org\.yaml:10:\d+: .*{reason}") as err:
        load_org(load_text(text, "org.yaml"))
    assert len(err.value.problems) == 1


def test_an_unknown_personal_time_zone_is_reported_with_its_place() -> None:
    text = ORG_YAML.replace(
        "  ann: {name: Ann, roles: [clerk]}",
        "  ann: {name: Ann, roles: [clerk], contacts: {quiet_hours: 22:00-08:00, tz: Mars/Base}}",
    )
    with pytest.raises(DefinitionError, match=r"^org\.yaml:10:\d+: .*'Mars/Base' is not a time"):
        load_org(load_text(text, "org.yaml"))


# ---------------------------------------------------------------------- departments

TREE_YAML = """
org: tree
roles:
  clerk: {}
  dm: {}
  gm: {}
departments:
  top: {name: Top, head: gus}
  sales: {name: Sales, parent: top, head: bob}
  north: {name: North, parent: sales, head: cat}
  south: {name: South, parent: sales}
users:
  gus: {name: Gus, roles: [gm], department: top}
  bob: {name: Bob, departments: [sales, north]}
  cat: {name: Cat, department: north, department_roles: {south: [dm]}}
  ann: {name: Ann, roles: [clerk, dm], department: north}
  eve: {name: Eve, roles: [clerk], department: south}
  fay: {name: Fay, roles: [clerk], department: north, manager: gus}
  ivy: {name: Ivy}
"""


def tree() -> Org:
    return load_org(load_text(TREE_YAML, "org.yaml"))


def test_a_manager_is_the_head_of_the_department_or_the_next_head_up() -> None:
    org = tree()
    assert org.manager("ann") == "cat"  # head of north
    assert org.manager("cat") == "bob"  # cat heads north: the head of sales
    assert org.manager("bob") == "gus"  # bob's main department is sales, which he heads
    assert org.manager("eve") == "bob"  # south has no head: the next head up
    assert org.manager("fay") == "gus"  # given explicitly
    assert org.manager("gus") is None and org.manager("ivy") is None
    assert org.chain("ann") == ["cat", "bob", "gus"]
    assert org.manager_why("eve") == "manager of eve (head of sales)"
    assert org.manager_why("fay") == "manager of fay (org.yaml)"


def test_roles_within_a_department_count_members_and_scoped_holders() -> None:
    org = tree()
    assert org.holders_in("dm", "north") == ["ann"]
    assert org.holders_in("dm", "south") == ["cat"]  # scoped to south, not a member
    assert org.holders_in("clerk", "south") == ["eve"]
    assert org.holders("dm") == ["ann"]  # a scoped role is no plain role
    assert org.members("north") == ("ann", "bob", "cat", "fay")
    assert org.lineage("north") == ["north", "sales", "top"]


def test_every_org_problem_is_reported_at_once_with_its_place() -> None:
    text = (
        TREE_YAML.replace("parent: sales, head: cat}", "parent: nowhere, head: cat}")
        .replace(
            "south: {name: South, parent: sales}", "south: {name: South, parent: sales, head: ann}"
        )
        .replace("department: top}", "department: moon}")
        .replace("department_roles: {south: [dm]}", "department_roles: {west: [dm, boss]}")
        .replace("manager: gus}", "manager: zed}")
        .replace(
            "ivy: {name: Ivy}",
            "ivy: {name: Ivy, manager: ivy, department: top, departments: [top]}",
        )
    )
    with pytest.raises(DefinitionError) as err:
        load_org(load_text(text, "org.yaml"))
    messages = [str(p) for p in err.value.problems]
    expected = [
        r"org\.yaml:8:\d+: head 'gus' is not a member of 'top'",
        r"org\.yaml:10:\d+: unknown department 'nowhere'; departments are: north, sales, south",
        r"org\.yaml:11:\d+: head 'ann' is not a member of 'south'",
        r"org\.yaml:13:\d+: unknown department 'moon'",
        r"org\.yaml:15:\d+: unknown department 'west'",
        r"org\.yaml:15:\d+: unknown role 'boss'",
        r"org\.yaml:18:\d+: unknown user 'zed'",
        r"org\.yaml:19:\d+: a user cannot be their own manager",
        r"org\.yaml:19:\d+: give 'department' or 'departments', not both",
    ]
    assert len(messages) == len(expected)
    for pattern in expected:
        assert any(re.match(pattern, m) for m in messages), (pattern, messages)


def test_a_user_cannot_be_their_own_manager() -> None:
    text = TREE_YAML.replace("ivy: {name: Ivy}", "ivy: {name: Ivy, manager: ivy}")
    with pytest.raises(
        DefinitionError, match=r"^org\.yaml:19:\d+: a user cannot be their own manager$"
    ):
        load_org(load_text(text, "org.yaml"))


def test_a_cycle_of_departments_is_refused_where_it_closes() -> None:
    text = TREE_YAML.replace(
        "top: {name: Top, head: gus}", "top: {name: Top, parent: north, head: gus}"
    )
    with pytest.raises(
        DefinitionError,
        match=r"^org\.yaml:\d+:\d+: departments form a cycle: north -> sales -> top -> north",
    ) as err:
        load_org(load_text(text, "org.yaml"))
    assert len(err.value.problems) == 1


def test_a_cycle_of_reporting_lines_is_refused_at_the_explicit_manager() -> None:
    # gus (head of top) reports to fay, who reports to gus: explicit both ways
    text = TREE_YAML.replace(
        "gus: {name: Gus, roles: [gm], department: top}",
        "gus: {name: Gus, roles: [gm], department: top, manager: ann}",
    )
    with pytest.raises(
        DefinitionError,
        match=r"^org\.yaml:13:\d+: reporting lines form a cycle: ann -> cat -> bob -> gus -> ann",
    ) as err:
        load_org(load_text(text, "org.yaml"))
    assert len(err.value.problems) == 1


def test_the_old_org_format_stays_valid(org: Org) -> None:
    assert org.departments == {} and org.manager("ann") is None
    assert org.users["ann"].member_of == ()


# ---------------------------------------------------------------------- dated delegation

DATED = ORG_YAML.replace(
    "  fay: {name: Fay, roles: [cfo]}",
    "  fay: {name: Fay, roles: [cfo], active: false,\n"
    "        delegate: {to: gus, from: 2026-10-01, until: 2026-10-07}}",
)


def test_a_dated_delegate_stands_in_only_on_those_days() -> None:
    org = load_org(load_text(DATED, "org.yaml"))
    inside = datetime(2026, 10, 7, 23, 59, tzinfo=SH)
    before = datetime(2026, 9, 30, 23, 59, tzinfo=SH)
    after = datetime(2026, 10, 8, 0, 0, tzinfo=SH)
    assert org.stand_in("fay", inside, SH) == (
        "gus",
        "fay is away; their delegate gus stands in (from 2026-10-01 until 2026-10-07)",
    )
    for day in (before, after):
        who, why = org.stand_in("fay", day, SH)
        assert who is None and "does not cover this day" in why
    assert org.holders("cfo", now=inside) == ["gus"]
    assert org.holders("cfo", now=after) == ["gus"]  # gus holds cfo himself
    assert dict(org.actor("gus", inside).stands_in_for) == {"fay": frozenset({"cfo"})}
    assert org.actor("gus", after).stands_in_for == ()
    with pytest.raises(WorkflowError, match="'fay' is not active and has no delegate today"):
        org.on_behalf("fay", after)
    # the day is read in the zone given: 2026-10-07 16:30 UTC is already the 8th in Shanghai
    late = datetime(2026, 10, 7, 16, 30, tzinfo=ZoneInfo("UTC"))
    assert org.stand_in("fay", late, SH)[0] is None
    assert org.stand_in("fay", late, ZoneInfo("UTC"))[0] == "gus"


def test_a_dated_delegation_must_name_a_user_and_run_forwards() -> None:
    text = DATED.replace("to: gus, from: 2026-10-01", "to: zed, from: 2026-10-09")
    with pytest.raises(DefinitionError) as err:
        load_org(load_text(text, "org.yaml"))
    messages = [str(p) for p in err.value.problems]
    assert len(messages) == 1 and re.match(
        r"org\.yaml:1[56]:\d+: .*'from' is after 'until'", messages[0]
    )
    text = DATED.replace("from: 2026-10-01", "from: 2026-10-02").replace("to: gus", "to: zed")
    with pytest.raises(DefinitionError, match=r"^org\.yaml:16:\d+: unknown user 'zed'$"):
        load_org(load_text(text, "org.yaml"))
