"""Slots: a task waits for roles or for named people, and actors fill them."""

from __future__ import annotations

import pytest

from engine.org import Org
from engine.slots import describe, is_person, lookup_keys, people, recipients, role, user_slot


def test_person_slot_round_trip_keeps_order_and_drops_duplicates() -> None:
    slot = user_slot("bob", "ann", "bob")
    assert slot == "user:bob,ann"
    assert is_person(slot) and people(slot) == ("bob", "ann") and role(slot) is None
    assert role("vp") == "vp" and people("vp") == () and not is_person("vp")


def test_empty_person_slot_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one user"):
        user_slot()


def test_lookup_keys_and_recipients_name_each_person_once() -> None:
    slots = ("vp", "user:ann,bob", "user:bob")
    assert lookup_keys(slots) == ("vp", "user:ann", "user:bob")
    assert recipients(slots) == ("role:vp", "user:ann", "user:bob")
    assert describe("user:ann,bob") == "ann or bob" and describe("vp") == "role vp"


def test_actor_fills_a_person_slot_as_themself_or_for_an_absentee(org: Org) -> None:
    eve = org.actor("eve")  # stands in for dan (inactive)
    assert eve.identities("user:eve") == [None]
    assert eve.identities("user:dan,fay") == ["dan"]
    assert eve.identities("user:fay") == []
    assert eve.identities("gm") == ["dan"]  # dan's role, through the stand-in
    assert org.actor("fay").identities("user:dan,fay") == [None]


def test_task_keys_cover_roles_names_and_stand_ins(org: Org) -> None:
    assert org.actor("eve").task_keys() == {"clerk", "user:eve", "gm", "user:dan"}
    assert org.actor("ann").task_keys() == {"clerk", "user:ann"}
