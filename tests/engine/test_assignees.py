"""Assignee resolution: each YAML form on a small tree, fallbacks, delegates, and
property tests on random org trees (the person found satisfies the rule; nothing hangs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.assignees import (
    Assignee,
    Context,
    Fallback,
    person_slot,
    resolve,
)
from engine.errors import DefinitionError
from engine.org import Org, OrgSpec, load_org
from engine.yamlsafe import Document, load_text

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 10, 9, 10, 0, tzinfo=SH)

TREE = """
org: tree
roles:
  clerk: {}
  dm: {}
  gm: {}
  finance: {}
departments:
  top: {name: Top, head: gus}
  sales: {name: Sales, parent: top, head: bob}
  north: {name: North, parent: sales, head: cat}
  south: {name: South, parent: sales}
  fin: {name: Finance, parent: top, head: fay}
users:
  gus: {name: Gus, roles: [gm], department: top}
  bob: {name: Bob, departments: [sales, north]}
  cat: {name: Cat, department: north, department_roles: {south: [dm]}}
  ann: {name: Ann, roles: [clerk, dm], department: north}
  eve: {name: Eve, roles: [clerk], department: south}
  fay: {name: Fay, roles: [finance], department: fin, active: false,
        delegate: {to: hal, from: 2026-10-01, until: 2026-10-07}}
  hal: {name: Hal, roles: [finance], department: fin}
  ivy: {name: Ivy, department: south, active: false}
"""


@pytest.fixture
def org() -> Org:
    return load_org(load_text(TREE, "org.yaml"))


def entry(data: Any) -> Assignee:
    return Assignee.model_validate(data)


def slots(org: Org, entries: list[Any], requester: str = "ann", **kw: Any) -> list[str]:
    res = resolve(org, [entry(e) for e in entries], Context(requester, kw.pop("vars", {})), **kw)
    return list(res.roles)


def test_slot_encoding_round_trips() -> None:
    assert person_slot(["b", "a", "b"]) == "user:a,b"
    with pytest.raises(ValueError, match="at least one user"):
        person_slot([])


def test_each_form_finds_its_person(org: Org) -> None:
    at = {"now": NOW}
    assert slots(org, [{"role": "clerk"}], **at) == ["clerk"]
    assert slots(org, [{"requester": True}], **at) == ["user:ann"]
    assert slots(org, [{"manager": "requester"}], **at) == ["user:cat"]
    assert slots(org, [{"manager": "requester", "levels": 2}], **at) == ["user:bob"]
    assert slots(org, [{"manager": "requester", "up_to": {"role": "gm"}}], **at) == ["user:gus"]
    assert slots(org, [{"manager": "requester", "up_to": {"department": "sales"}}], **at) == [
        "user:bob"
    ]
    assert slots(org, [{"head": "sales"}], **at) == ["user:bob"]
    assert slots(org, [{"head": {"of": "requester"}}], "cat", **at) == ["user:cat"]
    assert slots(org, [{"head": {"of": {"user": "bob"}}}], **at) == ["user:bob"]  # sales first
    assert slots(org, [{"user": "eve"}], **at) == ["user:eve"]
    assert slots(org, [{"user_var": "owner"}], vars={"owner": "eve"}, **at) == ["user:eve"]
    assert slots(org, [{"manager": {"var": "owner"}}], vars={"owner": "eve"}, **at) == ["user:bob"]
    # a role within a department: members holding it, and holders scoped to it
    assert slots(org, [{"role": "dm", "in": "requester"}], **at) == ["user:ann"]
    assert slots(org, [{"role": "dm", "in": {"department": "south"}}], **at) == ["user:cat"]
    assert slots(org, [{"role": "clerk", "in": {"var": "owner"}}], vars={"owner": "eve"}, **at) == [
        "user:eve"
    ]
    assert slots(org, [{"role": "dm", "in": {"user": "bob"}}], **at) == ["user:ann"]


def test_in_a_department_held_in_a_string_variable(org: Org) -> None:
    """A record's department (a customer's branch in a register) routes a task there."""
    res = resolve(
        org,
        [entry({"role": "clerk", "in": {"var": "branch"}})],
        Context("ann", {"branch": "south"}),
        NOW,
    )
    assert res.roles == ("user:eve",)
    assert "department south (variable branch)" in res.slots[0].reason
    # a value that is neither a department nor a user finds nobody; the fallback decides
    res = resolve(
        org,
        [entry({"role": "clerk", "in": {"var": "branch"}})],
        Context("ann", {"branch": "atlantis"}),
        NOW,
        if_none=[Fallback(role="finance")],
    )
    assert res.roles == ("finance",)


def test_the_head_of_a_department_without_one_is_nobody_unless_manager_up(org: Org) -> None:
    res = resolve(org, [entry({"head": {"of": "requester"}})], Context("eve"), NOW)
    assert res.roles == () and "south has no head" in res.unresolved[0]
    res = resolve(
        org, [entry({"head": {"of": "requester"}})], Context("eve"), NOW, if_none=["manager_up"]
    )
    assert res.roles == ("user:bob",)
    assert "next manager up: bob" in res.slots[0].reason


def test_an_entry_finding_several_people_is_one_slot(org: Org) -> None:
    assert slots(org, [{"role": "clerk", "in": {"department": "south"}}], now=NOW) == ["user:eve"]
    res = resolve(
        org,
        [entry({"role": "dm", "in": {"user": "bob"}}), entry({"role": "clerk", "in": "requester"})],
        Context("cat"),
        NOW,
        mode="all",
    )
    # bob is in sales and north: dm holders there are ann; clerks in north are ann too
    assert res.roles == ("user:ann",)
    assert "already asked (user:ann)" in res.dropped[0]


def test_an_absent_person_is_replaced_by_their_delegate_on_its_days(org: Org) -> None:
    inside = datetime(2026, 10, 5, 9, 0, tzinfo=SH)
    res = resolve(org, [entry({"head": "fin"})], Context("ann", tz=SH), inside)
    assert res.roles == ("user:hal",)
    assert res.slots[0].reason == (
        "head of fin: head of fin; fay is away; their delegate hal stands in "
        "(from 2026-10-01 until 2026-10-07)"
    )
    res = resolve(org, [entry({"head": "fin"})], Context("ann", tz=SH), NOW)
    assert res.roles == () and "does not cover this day" in res.unresolved[0]
    res = resolve(
        org,
        [entry({"head": "fin"})],
        Context("ann", tz=SH),
        NOW,
        if_none=[Fallback(role="finance")],
    )
    assert res.roles == ("finance",)
    assert res.slots[0].reason.endswith("nobody found; fallback to role finance")


def test_fallbacks_are_tried_in_order_and_skip_names_its_action(org: Org) -> None:
    nobody = [entry({"user": "ivy"})]  # away, no delegate
    res = resolve(
        org, nobody, Context("ann"), NOW, if_none=[Fallback(role="dm"), "skip"], default_skip="ok"
    )
    assert res.roles == ("dm",)
    res = resolve(org, nobody, Context("ann"), NOW, if_none=["skip"], default_skip="approve")
    assert res.roles == () and res.skip == "approve"
    assert res.skip_reason == "user ivy: named user ivy; ivy is away and has no delegate; " + (
        "nobody found; step skipped (approve)"
    )
    # manager_up goes on from ivy: the next head up (south has none: bob)
    res = resolve(org, nobody, Context("ann"), NOW, if_none=["manager_up"])
    assert res.roles == ("user:bob",)
    # in mode all, an entry that is skipped is dropped; the others still ask
    res = resolve(
        org,
        [entry({"user": "ivy"}), entry({"role": "gm"})],
        Context("ann"),
        NOW,
        mode="all",
        if_none=[Fallback(skip="ok")],
    )
    assert res.roles == ("gm",) and res.skip is None and "step skipped" in res.dropped[0]
    # in mode any, fallbacks only matter when nobody at all is found
    res = resolve(org, [entry({"user": "ivy"}), entry({"role": "gm"})], Context("ann"), NOW)
    assert res.roles == ("gm",) and res.unresolved == ()


def test_the_requester_is_reported_not_dropped(org: Org) -> None:
    res = resolve(org, [entry({"role": "dm", "in": "requester"})], Context("ann"), NOW)
    assert res.roles == ("user:ann",) and res.requester_in == ("user:ann",)
    res = resolve(org, [entry({"role": "clerk"})], Context("ann"), NOW)
    assert res.requester_in == ("clerk",)
    assert res.to_json() == {
        "slots": [{"slot": "clerk", "reason": "role clerk: any holder"}],
        "requester_in": ["clerk"],
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "exactly one of role, requester, manager, head, user, user_var"),
        ({"role": "dm", "user": "ann"}, "exactly one of"),
        ({"user": "ann", "in": "requester"}, "'in' and 'upward' are only for role"),
        ({"role": "dm", "upward": True}, "'upward' needs 'in'"),
        ({"head": "x", "levels": 2}, "only for manager"),
        ({"manager": "requester", "levels": 2, "up_to": {"role": "gm"}}, "not both"),
        ({"manager": "requester", "levels": 0}, "greater than or equal to 1"),
        ({"manager": "boss"}, "write requester, {var: NAME}"),
        ({"manager": {"department": "x"}}, "a department has no manager"),
        ({"requester": True, "colour": "red"}, "extra inputs are not permitted"),
        ({"manager": "requester", "up_to": {}}, "exactly one of role or department"),
    ],
)
def test_a_malformed_assignee_is_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        Assignee.model_validate(data)
    assert message.lower() in str(err.value).lower()


# --------------------------------------------------------------------------- properties


@st.composite
def org_trees(draw: st.DrawFn) -> dict[str, Any]:
    """A random department tree (a parent always comes earlier), users in random
    departments, heads among members, some absent with or without a delegate."""
    n_depts = draw(st.integers(1, 6))
    n_users = draw(st.integers(1, 10))
    users = [f"u{i}" for i in range(n_users)]
    member = {u: f"d{draw(st.integers(0, n_depts - 1))}" for u in users}
    departments: dict[str, Any] = {}
    for i in range(n_depts):
        dept: dict[str, Any] = {"name": f"D{i}"}
        if i:
            dept["parent"] = f"d{draw(st.integers(0, i - 1))}"
        members = [u for u in users if member[u] == f"d{i}"]
        if members and draw(st.integers(0, 4)):  # mostly with a head: longer chains
            dept["head"] = draw(st.sampled_from(members))
        departments[f"d{i}"] = dept
    spec_users: dict[str, Any] = {}
    for u in users:
        roles = draw(st.lists(st.sampled_from(["r1", "r2"]), unique=True))
        spec: dict[str, Any] = {"name": u, "roles": roles, "department": member[u]}
        if not draw(st.integers(0, 3)):
            spec["active"] = False
            other = [x for x in users if x != u]
            if other and draw(st.booleans()):
                spec["delegate"] = draw(st.sampled_from(other))
        spec_users[u] = spec
    return {
        "org": "random",
        "roles": {"r1": {}, "r2": {}},
        "departments": departments,
        "users": spec_users,
    }


def acting(org: Org, person: str) -> str | None:
    return org.stand_in(person, NOW)[0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=org_trees(), pick=st.data())
def test_the_person_found_satisfies_the_rule(data: dict[str, Any], pick: st.DataObject) -> None:
    org = load_org(Document("org.yaml", data))
    users = sorted(org.users)
    requester = pick.draw(st.sampled_from(users))
    ctx = Context(requester)

    # manager N levels up: the Nth of an independent walk of the reporting lines
    n = pick.draw(st.integers(1, len(org.chain(requester)) + 1))  # up to one past the top
    walk, current = [], requester
    for _ in range(n):
        current = org.manager(current)
        if current is None:
            break
        walk.append(current)
    up_n = Assignee.model_validate({"manager": "requester", "levels": n})
    res = resolve(org, [up_n], ctx, NOW)
    expected = acting(org, walk[n - 1]) if len(walk) == n else None
    assert res.roles == ((f"user:{expected}",) if expected else ())

    # up to a role: the first manager up the line who holds it
    res = resolve(
        org, [Assignee.model_validate({"manager": "requester", "up_to": {"role": "r2"}})], ctx, NOW
    )
    first = next((m for m in org.chain(requester) if "r2" in org.users[m].roles), None)
    expected = acting(org, first) if first else None
    assert res.roles == ((f"user:{expected}",) if expected else ())

    # the head of a department is its head (or their delegate)
    dept = pick.draw(st.sampled_from(sorted(org.departments)))
    res = resolve(org, [Assignee(head=dept)], ctx, NOW)
    head = org.head(dept)
    expected = acting(org, head) if head else None
    assert res.roles == ((f"user:{expected}",) if expected else ())

    # a role within a department: everyone found holds it there (or stands in for one who does)
    res = resolve(
        org, [Assignee.model_validate({"role": "r1", "in": {"department": dept}})], ctx, NOW
    )
    allowed = {acting(org, u) for u in users if org.holds_in(u, "r1", dept)} - {None}
    found = set(res.slots[0].people or ()) if res.slots else set()
    assert found == allowed

    # manager_up never lands below where it started: each fallback person is above
    res = resolve(org, [Assignee(head=dept)], ctx, NOW, if_none=["manager_up"])
    if res.slots:
        (person,) = res.slots[0].people or ()
        heads_up = [org.head(d) for d in org.lineage(dept)]
        assert any(person == acting(org, h) for h in heads_up if h)


@settings(max_examples=100, deadline=None)
@given(data=org_trees(), links=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9))))
def test_cycles_are_refused_and_cannot_hang_the_resolver(
    data: dict[str, Any], links: list[tuple[int, int]]
) -> None:
    users = sorted(data["users"])
    for a, b in links:
        if a < len(users) and b < len(users) and a != b:
            data["users"][users[a]]["manager"] = users[b]
    if len(data["departments"]) > 1:  # close a loop in the tree too, sometimes
        data["departments"]["d0"]["parent"] = f"d{len(data['departments']) - 1}"
    org = Org(OrgSpec.model_validate(data))  # unvalidated: the resolver must guard itself
    for u in users:
        chain = org.chain(u)
        assert len(chain) == len(set(chain)) and u not in chain
        for e in (
            {"manager": "requester", "levels": 20},
            {"head": {"of": "requester"}},
            {"role": "r1", "in": "requester", "upward": True},
            {"manager": "requester", "up_to": {"role": "r2"}},
        ):
            resolve(org, [Assignee.model_validate(e)], Context(u), NOW, if_none=["manager_up"])
    has_cycle = any((c := org.manager(u)) is not None and u in [c, *org.chain(c)] for u in users)
    if has_cycle or len(data["departments"]) > 1:
        with pytest.raises(DefinitionError, match="form a cycle"):
            load_org(Document("org.yaml", data))
