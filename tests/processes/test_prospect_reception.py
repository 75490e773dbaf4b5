"""prospect_reception (篇2): dispatch form at least a day ahead, car and driver, the talks
record after the register is signed, and regular follow-up."""

from __future__ import annotations

import pytest

from engine.errors import ActionNotAllowed, InvalidData
from tests.cli.helpers import Shell

from . import Run, at, cli


def prospect(visit_date: str = "2026-11-10", now: str = "2026-11-05 10:00") -> Run:
    return Run.start(
        "prospect_reception",
        "song.jia",
        at(now),
        client_name="陈总",
        contact="13700000000",
        company="某服饰加盟商",
        visit_date=visit_date,
    )


@pytest.mark.parametrize(
    ("now", "ok"),
    [("2026-11-09 23:59", True), ("2026-11-10 00:00", False), ("2026-11-10 09:00", False)],
)
def test_the_dispatch_form_is_due_a_day_before(now: str, ok: bool) -> None:
    run = prospect()
    data = {"pickup_place": "乌鲁木齐机场 T3", "companions": "助理一人"}
    if ok:
        run.act("song.jia", "submit", now=at(now), **data)
        assert (run.state, run.role) == ("car_assignment", "admin_center")
    else:
        with pytest.raises(ActionNotAllowed, match="at least one day before the visit"):
            run.act("song.jia", "submit", now=at(now), **data)


def test_car_assigned_visit_recorded_won_on_the_spot() -> None:
    run = prospect()
    run.act("song.jia", "submit", pickup_place="机场")
    with pytest.raises(InvalidData, match="driver: required"):
        run.act("tang.li", "assign", car="新A12345")
    run.act("tang.li", "assign", car="新A12345", driver="老周")
    assert (run.state, run.role) == ("visit", "marketing")
    with pytest.raises(ActionNotAllowed, match="once the client has signed the visit register"):
        run.act(
            "song.jia",
            "visited",
            register_signed="false",
            talks_record="t",
            result="deposit_paid",
            now=at("2026-11-10 17:00"),
        )
    run.act(
        "song.jia",
        "visited",
        register_signed="true",
        talks_record="认同品牌，现场交保证金",
        result="deposit_paid",
        now=at("2026-11-10 17:00"),
    )
    assert (run.status, run.outcome) == ("completed", "won")


def test_no_car_goes_back_and_own_transport_skips_the_car() -> None:
    run = prospect()
    run.act("song.jia", "submit", pickup_place="火车站")
    run.act("tang.li", "no_car", comment="车辆均已派出")
    assert run.state == "dispatch_form"
    run.act("song.jia", "own_transport", now=at("2026-11-10 08:00"))
    assert run.state == "visit"


def test_follow_up_every_two_weeks_until_signed_or_dropped() -> None:
    run = prospect()
    run.act("song.jia", "own_transport")
    run.act(
        "song.jia",
        "visited",
        register_signed="true",
        talks_record="对价格有疑问",
        open_problems="首批订货折扣",
        result="interested",
        now=at("2026-11-10 17:00"),
    )
    assert (run.state, run.task.due_at) == ("follow_up", at("2026-11-25 00:00"))
    fired = run.advance(at("2026-11-25 00:00"))
    assert [n.event for out in fired for n in out.notices] == ["reminder", "overdue"]
    run.act("song.jia", "followed_up", follow_up_note="已电话沟通折扣")
    assert (run.state, run.vars["follow_ups"]) == ("follow_up", 1)
    run.act("song.jia", "signed", follow_up_note="签订加盟合同")
    assert run.outcome == "won"
    run = prospect()
    run.act("song.jia", "own_transport")
    run.act(
        "song.jia",
        "visited",
        register_signed="true",
        talks_record="t",
        result="undecided",
        now=at("2026-11-10 17:00"),
    )
    run.act("song.jia", "dropped", close_reason="客户选择其他品牌")
    assert run.outcome == "lost"


def test_not_interested_cancelled_no_show() -> None:
    run = prospect()
    run.act("song.jia", "own_transport")
    run.act(
        "song.jia",
        "visited",
        register_signed="true",
        talks_record="t",
        result="not_interested",
        now=at("2026-11-10 17:00"),
    )
    assert run.outcome == "lost"
    run = prospect()
    run.act("song.jia", "cancel", cancel_reason="客户改期")
    assert run.outcome == "cancelled"
    run = prospect()
    run.act("song.jia", "own_transport")
    with pytest.raises(ActionNotAllowed, match="the visit day has not come yet"):
        run.act("song.jia", "no_show", comment="x")
    run.act("song.jia", "no_show", comment="客户未到", now=at("2026-11-10 18:00"))
    assert run.outcome == "no_show"


@pytest.fixture
def sh(db_url: str) -> Shell:
    return cli(db_url, "prospect_reception")


def test_cli_reception_won(sh: Shell) -> None:
    inst = sh.js(
        [
            "start",
            "prospect_reception",
            "--as",
            "song.jia",
            "--set",
            "client_name=陈总",
            "--set",
            "contact=137",
            "--set",
            "visit_date=2026-11-10",
        ],
        now="2026-11-09T10:00:00+08:00",
    )
    task = inst["tasks"][0]["id"]
    sh.refused(
        f"act {task} submit --as song.jia --set pickup_place=机场",
        "at least one day before the visit",
        now="2026-11-10T08:00:00+08:00",
    )
    inst = sh.js(
        f"act {task} submit --as song.jia --set pickup_place=机场", now="2026-11-09T11:00:00+08:00"
    )
    car = inst["tasks"][0]
    assert car["role"] == "admin_center"
    # dated: an undated step takes the real clock, and history may not run backwards
    inst = sh.js(
        f"act {car['id']} assign --as tang.li --set car=新A1 --set driver=老周",
        now="2026-11-09T12:00:00+08:00",
    )
    done = sh.js(
        f"act {inst['tasks'][0]['id']} visited --as song.jia --set register_signed=true "
        "--set talks_record=签约 --set result=contract_signed",
        now="2026-11-10T16:00:00+08:00",
    )
    assert (done["status"], done["outcome"]) == ("completed", "won")


def test_cli_cancelled(sh: Shell) -> None:
    inst = sh.js(
        "start prospect_reception --as song.jia --set client_name=x --set contact=1 "
        "--set visit_date=2026-12-20"
    )
    done = sh.js(f"act {inst['tasks'][0]['id']} cancel --as song.jia --set cancel_reason=改期")
    assert done["outcome"] == "cancelled"
