"""Who acts in an absent user's name: the delegate, or nobody (and then a clear reason)."""

from __future__ import annotations

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
