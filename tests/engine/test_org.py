"""Who acts in an absent user's name: the delegate, or nobody (and then a clear reason)."""

from __future__ import annotations

import pytest

from engine.errors import NotFound, WorkflowError
from engine.org import Org, load_org
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
