"""visitor_registration (篇5, 篇10): registered with an ID, admitted only when the host agrees,
the host signs the receipt, which is handed back at the gate; goods need an exit pass."""

from __future__ import annotations

import pytest

from engine.errors import ActionNotAllowed, InvalidData
from tests.cli.helpers import Shell

from . import Run, at, cli

NOW = at("2026-11-05 09:30")


def visitor(host: str = "gao.shan") -> Run:
    return Run.start(
        "visitor_registration",
        "lu.bin",
        NOW,
        visitor_name="赵六",
        organisation="某监理公司",
        purpose="工程验收",
        id_type="id_card",
        id_number="650102199001011234",
        host=host,
    )


def test_no_entry_without_an_id() -> None:
    with pytest.raises(InvalidData, match="id_number: required by start"):
        Run.start(
            "visitor_registration",
            "lu.bin",
            NOW,
            visitor_name="x",
            organisation="y",
            purpose="z",
            id_type="id_card",
            host="gao.shan",
        )


def test_only_the_named_host_answers() -> None:
    run = visitor()
    assert (run.state, run.role) == ("host_confirmation", "host")
    with pytest.raises(ActionNotAllowed, match="only the person visited"):
        run.act("song.jia", "confirm")  # holds role host, but is not this visitor's host
    run.act("gao.shan", "confirm", now=at("2026-11-05 09:35"))
    assert (run.state, run.role) == ("inside", "host")
    with pytest.raises(ActionNotAllowed, match="only the person visited"):
        run.act("song.jia", "sign_receipt")
    run.act("gao.shan", "sign_receipt", now=at("2026-11-05 11:00"))
    assert (run.state, run.role, run.vars["receipt_signed"]) == ("at_exit", "reception", True)
    with pytest.raises(ActionNotAllowed, match="exit pass"):
        run.act("lu.bin", "exit", carrying_goods="true")
    run.act("lu.bin", "exit", carrying_goods="true", exit_pass_checked="true")
    assert (run.status, run.outcome, run.vars["receipt_returned"]) == (
        "completed",
        "completed",
        True,
    )


def test_declined_or_unanswered_is_not_admitted() -> None:
    run = visitor()
    with pytest.raises(InvalidData, match="refusal_reason: required"):
        run.act("gao.shan", "decline")
    run.act("gao.shan", "decline", refusal_reason="未预约")
    assert (run.outcome, run.vars["refusal_reason"]) == ("refused", "未预约")
    run = visitor()
    fired = run.advance(at("2026-11-05 10:30"))
    assert [n.event for out in fired for n in out.notices][:2] == ["reminder", "overdue"]
    assert (run.outcome, run.vars["refusal_reason"]) == (
        "refused",
        "the host did not answer within an hour",
    )


def test_a_visitor_leaving_unsigned_is_closed_by_reception_and_flagged() -> None:
    run = visitor()
    run.act("gao.shan", "confirm")
    run.advance(at("2026-11-05 17:30"))
    assert (run.state, run.role) == ("at_exit", "reception")
    with pytest.raises(ActionNotAllowed, match="must carry the host's signature"):
        run.act("lu.bin", "exit", carrying_goods="false")
    with pytest.raises(ActionNotAllowed, match="a comment is required"):
        run.act("lu.bin", "exit_without_receipt", carrying_goods="false")
    run.act("lu.bin", "exit_without_receipt", carrying_goods="false", comment="未签字已离开")
    assert (run.outcome, run.vars["receipt_returned"]) == ("completed", False)


@pytest.fixture
def sh(db_url: str) -> Shell:
    return cli(db_url, "visitor_registration")


def test_cli_visit_and_the_id_is_confidential(sh: Shell) -> None:
    inst = sh.js(
        [
            "start",
            "visitor_registration",
            "--as",
            "lu.bin",
            "--set",
            "visitor_name=赵六",
            "--set",
            "organisation=某监理公司",
            "--set",
            "purpose=验收",
            "--set",
            "id_type=id_card",
            "--set",
            "id_number=650102199001011234",
            "--set",
            "host=gao.shan",
        ],
        now="2026-11-05T09:30:00+08:00",
    )
    assert sh.js(f"show {inst['id']} --as gao.shan")["variables"]["id_number"] == "***"
    assert sh.js(f"show {inst['id']} --as lu.bin")["variables"]["id_number"] == "650102199001011234"
    task = inst["tasks"][0]["id"]
    sh.refused(f"act {task} confirm --as song.jia", "only the person visited")
    inst = sh.js(f"act {task} confirm --as gao.shan", now="2026-11-05T09:40:00+08:00")
    inst = sh.js(
        f"act {inst['tasks'][0]['id']} sign_receipt --as gao.shan", now="2026-11-05T11:00:00+08:00"
    )
    done = sh.js(
        f"act {inst['tasks'][0]['id']} exit --as lu.bin --set carrying_goods=false",
        now="2026-11-05T11:10:00+08:00",
    )
    assert (done["status"], done["outcome"]) == ("completed", "completed")


def test_cli_unanswered_host_is_refused_by_the_timer(sh: Shell) -> None:
    inst = sh.js(
        [
            "start",
            "visitor_registration",
            "--as",
            "lu.bin",
            "--set",
            "visitor_name=x",
            "--set",
            "organisation=y",
            "--set",
            "purpose=z",
            "--set",
            "id_type=work_id",
            "--set",
            "id_number=1",
            "--set",
            "host=song.jia",
        ],
        now="2026-11-05T09:30:00+08:00",
    )
    sh.ok("tick", now="2026-11-05T10:30:01+08:00")
    shown = sh.js(f"show {inst['id']}")
    assert (shown["status"], shown["outcome"]) == ("completed", "refused")


# ---------------------------------------------------------------- 篇5 第4条: inspections

INSPECTED = "2026-11-05T09:30:00+08:00"


def register(sh: Shell, *extra: str) -> dict:
    base = ["start", "visitor_registration", "--as", "lu.bin", "--set", "visitor_name=王局长"]
    base += ["--set", "organisation=市应急管理局", "--set", "purpose=安全生产检查"]
    base += ["--set", "id_type=work_id", "--set", "id_number=A1"]
    return sh.js([*base, *extra], now=INSPECTED)


def told(sh: Shell, now: str) -> list[tuple[str, str, str]]:
    """Deliver what is due (the console channel) and list who was told what, for which."""
    sh.ok("tick", now=now)
    return [(n["event"], n["user_id"], n["instance_id"]) for n in sh.js("notices")]


def test_cli_an_inspection_tells_the_plant_leaders_at_once(sh: Shell) -> None:
    inst = register(
        sh, "--set", "visit_kind=inspection"
    )  # no host: inspectors are not visiting one
    assert inst["state"] == "inspection"
    assert [r["user"] for r in inst["cc"]] == ["fang.zheng", "tian.ye"]
    assert {(r["by"], r["state"]) for r in inst["cc"]} == {("system", "inspection")}
    notices = told(sh, INSPECTED)
    assert ("cc", "fang.zheng", inst["id"]) in notices and ("cc", "tian.ye", inst["id"]) in notices
    # a plant leader reads it (the ID number stays with reception) and receives them
    shown = sh.js(f"show {inst['id']} --as tian.ye", now=INSPECTED)
    assert (shown["variables"]["visit_kind"], shown["variables"]["id_number"]) == (
        "inspection",
        "***",
    )
    [task] = sh.js("tasks --as fang.zheng", now=INSPECTED)
    sh.refused(f"act {task['id']} received --as lu.bin", "needs role plant_leader")
    inst = sh.js(f"act {task['id']} received --as tian.ye", now="2026-11-05T09:40:00+08:00")
    assert (inst["state"], inst["variables"]["received_by"]) == ("inspecting", "tian.ye")
    inst = sh.js(
        f"act {inst['tasks'][0]['id']} finished --as tian.ye", now="2026-11-05T11:30:00+08:00"
    )
    done = sh.js(
        f"act {inst['tasks'][0]['id']} exit --as lu.bin --set carrying_goods=false",
        now="2026-11-05T11:35:00+08:00",
    )
    assert (done["outcome"], done["variables"]["receipt_signed"]) == ("completed", True)


def test_cli_no_leader_within_half_an_hour_reception_is_told(sh: Shell) -> None:
    inst = register(sh, "--set", "visit_kind=inspection")
    out = sh.ok("tick", now="2026-11-05T10:00:00+08:00").err
    assert "notify lu.bin" in out
    assert sh.js(f"show {inst['id']}")["state"] == "inspection"  # still waiting for a leader


def test_cli_an_ordinary_visitor_does_not_tell_the_plant_leaders(sh: Shell) -> None:
    sh.refused(
        ["start", "visitor_registration", "--as", "lu.bin"]
        + ["--set", "visitor_name=赵六", "--set", "organisation=某公司", "--set", "purpose=洽谈"]
        + ["--set", "id_type=id_card", "--set", "id_number=1"],
        "host: required by start when visit_kind == 'ordinary'",
        now=INSPECTED,
    )
    inst = register(sh, "--set", "host=gao.shan")
    assert (inst["state"], inst["variables"]["visit_kind"]) == ("host_confirmation", "ordinary")
    assert inst["cc"] == []
    notices = told(sh, INSPECTED)
    assert [user for _, user, _ in notices] == ["gao.shan", "song.jia"]  # the host role's task
    assert {event for event, _, _ in notices} == {"task_assigned"}
    assert sh.js("tasks --as fang.zheng", now=INSPECTED) == []
