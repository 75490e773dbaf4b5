"""The township people's congress monthly reception day (篇7 rules 2-4) through the CLI: the
schedule opens the day's task on the configured day of the month (default the 15th), a
weekend or holiday moves the reception to the next working day, and the record says who
came, what they raised and which delegates or government staff took part."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import Shell

from . import PROCESSES, cli, source

DEPLOYED = "2026-10-01T09:00:00+08:00"
CRON = 'cron: "0 8 15 * *"'  # the one value the owner edits (docs/processes/npc_reception_day.md)


@pytest.fixture
def sh(db_url: str) -> Shell:
    return cli(db_url, "npc_reception_day", deployed_at=DEPLOYED)


def opened_by_tick(sh: Shell, now: str) -> dict[str, Any]:
    [started] = sh.js("tick", now=now)["scheduled_starts"]
    return sh.js(f"show {started}", now=now)


def test_the_shipped_day_is_the_15th() -> None:
    assert source("npc_reception_day").count(CRON) == 1


def test_a_working_15th_opens_that_days_reception_for_the_chair_and_vice_chair(
    sh: Shell,
) -> None:
    assert sh.js("tick", now="2026-10-15T07:59:00+08:00")["scheduled_starts"] == []
    inst = opened_by_tick(sh, "2026-10-15T08:00:10+08:00")  # a Thursday
    variables = inst["variables"]
    assert (variables["scheduled_day"], variables["reception_day"]) == ("2026-10-15", "2026-10-15")
    assert inst["requester"] == "qin.ling"
    [task] = inst["tasks"]
    assert task["due_at"] == "2026-10-16T00:00:00+08:00"
    assert task["actions"] == ["held", "no_visitors", "not_held"]
    assert [t["id"] for t in sh.js("tasks --as bai.xue")] == [task["id"]]  # the vice-chair
    assert [t["id"] for t in sh.js("tasks --as qin.ling")] == [task["id"]]
    assert sh.js("tasks --as shi.lei") == []  # office staff do not hold the reception
    # one reception a month, however often tick runs
    assert sh.js("tick", now="2026-10-31T23:00:00+08:00")["scheduled_starts"] == []
    assert len(sh.js("instances --process npc_reception_day")) == 1


@pytest.mark.parametrize(
    ("fired", "moved_to", "due"),
    [
        ("2026-11-15T08:00:00+08:00", "2026-11-16", "2026-11-17T00:00:00+08:00"),  # Sunday
        # Sunday in the Spring Festival holiday (15-23 Feb 2026): the next working day is
        # Tue 24 Feb
        ("2026-02-15T08:00:00+08:00", "2026-02-24", "2026-02-25T00:00:00+08:00"),
    ],
)
def test_a_weekend_or_holiday_moves_the_reception_to_the_next_working_day(
    db_url: str, fired: str, moved_to: str, due: str
) -> None:
    sh = cli(db_url, "npc_reception_day", deployed_at=f"{fired[:8]}01T09:00:00+08:00")
    inst = opened_by_tick(sh, fired)
    variables = inst["variables"]
    assert (variables["scheduled_day"], variables["reception_day"]) == (fired[:10], moved_to)
    assert inst["tasks"][0]["due_at"] == due
    # not overdue on the scheduled day itself: it is due at the end of the moved day
    sh.ok("tick", now=f"{moved_to}T12:00:00+08:00")
    assert sh.js("tasks --overdue", now=f"{moved_to}T12:00:00+08:00") == []


def test_held_with_delegates_recorded_and_visitors_confidential(sh: Shell) -> None:
    inst = opened_by_tick(sh, "2026-10-15T08:00:00+08:00")
    task = inst["tasks"][0]["id"]
    at = "2026-10-15T17:00:00+08:00"
    sh.refused(
        f"act {task} held --as lu.bin --set visitors_count=1",
        "needs role",
        now=at,
    )
    base = ["act", task, "held", "--as", "bai.xue", "--set", "visitors_count=3"]
    base += ["--set", "issues=村道维修; 低保申请", "--set", "visitors=张三 东村; 李四 西村"]
    sh.refused(base, "others_took_part: required", now=at)
    sh.refused(
        [*base, "--set", "others_took_part=true"],
        "participants: required by action 'held' when others_took_part",
        now=at,
    )
    assert sh.js(f"show {inst['id']}")["status"] == "active"
    done = sh.js(
        [*base, "--set", "others_took_part=true", "--set", "participants=王代表; 乡民政办刘干事"]
        + ["--set", "referrals=低保申请转乡民政办办理"],
        now=at,
    )
    assert (done["status"], done["outcome"]) == ("completed", "held")
    assert done["variables"]["participants"] == "王代表; 乡民政办刘干事"
    assert sh.js(f"show {inst['id']} --as lu.bin")["variables"]["visitors"] == "***"
    assert sh.js(f"show {inst['id']} --as shi.lei")["variables"]["visitors"].startswith("张三")


def test_nobody_came_and_nobody_was_invited(sh: Shell) -> None:
    inst = opened_by_tick(sh, "2026-10-15T08:00:00+08:00")
    done = sh.js(
        f"act {inst['tasks'][0]['id']} no_visitors --as qin.ling --set others_took_part=false",
        now="2026-10-15T16:00:00+08:00",
    )
    assert (done["outcome"], done["variables"]["visitors_count"]) == ("held", 0)


def test_reminded_at_six_then_overdue(sh: Shell) -> None:
    opened_by_tick(sh, "2026-10-15T08:00:00+08:00")
    told = sh.ok("tick", now="2026-10-15T18:00:00+08:00").err
    assert "notify qin.ling" in told and "notify bai.xue" in told
    sh.ok("tick", now="2026-10-16T00:00:00+08:00")
    assert len(sh.js("tasks --overdue --as qin.ling", now="2026-10-16T08:00:00+08:00")) == 1


def test_the_chair_away_the_vice_chair_starts_it_in_the_chairs_name(
    db_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "processes"
    folder.mkdir()
    shutil.copy(PROCESSES / "npc_reception_day.yaml", folder)
    org = (PROCESSES / "org.yaml").read_text(encoding="utf-8")
    away = org.replace("qin.ling: {name: 秦岭,", "qin.ling: {name: 秦岭, active: false,")
    assert away != org
    (folder / "org.yaml").write_text(away, encoding="utf-8")
    sh = Shell(db_url, folder)
    sh.ok(["deploy", str(folder / "npc_reception_day.yaml")], now=DEPLOYED)
    inst = opened_by_tick(sh, "2026-10-15T08:00:00+08:00")
    start = sh.js(f"audit --instance {inst['id']} --action start")[0]
    assert (start["actor"], start["on_behalf_of"]) == ("bai.xue", "qin.ling")


def test_the_owner_changes_the_day_by_editing_the_crons_day_field(
    db_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "processes"
    folder.mkdir()
    shutil.copy(PROCESSES / "org.yaml", folder)
    edited = source("npc_reception_day").replace(CRON, 'cron: "0 8 10 * *"')
    (folder / "npc_reception_day.yaml").write_text(edited, encoding="utf-8")
    sh = Shell(db_url, folder)
    sh.ok(["deploy", str(folder / "npc_reception_day.yaml")], now=DEPLOYED)
    assert sh.js("tick", now="2026-10-09T23:00:00+08:00")["scheduled_starts"] == []
    inst = opened_by_tick(sh, "2026-10-10T08:00:00+08:00")  # Sat 10 Oct 2026 is a 调休 workday
    assert inst["variables"]["reception_day"] == "2026-10-10"
    assert sh.js("tick", now="2026-10-15T08:00:00+08:00")["scheduled_starts"] == []


def test_an_extra_reception_day_by_hand_moves_off_a_holiday_too(sh: Shell) -> None:
    sh.refused(
        "start npc_reception_day --as shi.lei", "may not start", now="2026-09-28T09:00:00+08:00"
    )
    inst = sh.js(
        "start npc_reception_day --as bai.xue --set reception_day=2026-10-01",
        now="2026-09-28T09:00:00+08:00",
    )
    assert (inst["variables"]["scheduled_day"], inst["variables"]["reception_day"]) == (
        "2026-10-01",
        "2026-10-08",  # National Day: 1-7 Oct
    )
