from pathlib import Path

import pytest

from engine.catalog import load_catalog, yaml_files
from engine.errors import DefinitionError
from engine.org import Org

from .conftest import build

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
SHIPPED = [
    p
    for p in yaml_files([PROCESSES])
    if p.name != "org.yaml" and not {"calendars", "registers", "reports"} & set(p.parts)
]
REGISTERS = yaml_files([PROCESSES / "registers"]) if (PROCESSES / "registers").is_dir() else []
REPORTS = yaml_files([PROCESSES / "reports"]) if (PROCESSES / "reports").is_dir() else []


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_process_is_valid_and_declares_its_schema(path: Path) -> None:
    catalog = load_catalog([path], PROCESSES / "org.yaml")
    assert len(catalog.processes) == 1
    assert path.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=")


@pytest.mark.parametrize("path", REGISTERS, ids=lambda p: p.name)
def test_shipped_register_is_valid_and_declares_its_schema(path: Path) -> None:
    catalog = load_catalog([path], PROCESSES / "org.yaml")
    assert len(catalog.registers) >= 1 and path.stem in catalog.registers
    assert path.read_text(encoding="utf-8").startswith(
        "# yaml-language-server: $schema=../../docs/schema/register.schema.json"
    )


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.name)
def test_shipped_report_is_valid_and_declares_its_schema(path: Path) -> None:
    catalog = load_catalog([PROCESSES])  # a report is checked against the processes it reads
    assert path.stem in catalog.reports
    assert path.read_text(encoding="utf-8").startswith(
        "# yaml-language-server: $schema=../../docs/schema/report.schema.json"
    )


def test_whole_folder_validates_together() -> None:
    catalog = load_catalog([PROCESSES])
    assert "complaint" in catalog.processes
    assert {"monthly_service", "lost_customer_monthly"} <= set(catalog.reports)


BROKEN = """\
process: broken
title: Broken
variables:
  amount: {type: money}
start:
  to: first
  require: [amount, ghost]
states:
  first:
    task:
      role: nobody
      actions:
        go: {to: nowhere}
        check: {to: done, when: "amount >"}
        peek: {to: done, when: "mystery > 1"}
  orphan:
    task:
      role: clerk
      actions:
        loop: {to: orphan}
  done:
    final: true
    colour: red
"""


def test_broken_definition_reports_every_problem_with_position(org: Org) -> None:
    with pytest.raises(DefinitionError) as info:
        build(BROKEN, org)
    text = str(info.value)
    expected = [
        "p.yaml:23:5: unknown key 'colour'",
    ]
    for line in expected:
        assert line in text
    # structural errors come first; fix them and the semantic ones all appear together
    fixed = BROKEN.replace("    colour: red\n", "")
    with pytest.raises(DefinitionError) as info:
        build(fixed, org)
    text = str(info.value)
    for line in [
        "p.yaml:7:21: unknown variable 'ghost'",
        "p.yaml:11:7: unknown role 'nobody'",
        "p.yaml:13:14: unknown target state 'nowhere'",
        "p.yaml:14:27: expression 'amount >' does not compile",
        "p.yaml:15:26: expression 'mystery > 1' uses unknown name(s): mystery",
        "p.yaml:16:3: state 'orphan' is unreachable from the start",
    ]:
        assert line in text, text
    assert len(info.value.problems) == 6


def test_dead_end_and_missing_otherwise_branch(org: Org) -> None:
    text = """\
process: stuck
title: Stuck
variables: {x: {type: integer}}
start: {to: a, require: [x]}
states:
  a:
    route:
      - {when: "x > 1", to: b}
  b:
    task:
      role: clerk
      actions:
        again: {to: b}
  c: {final: true}
"""
    with pytest.raises(DefinitionError) as info:
        build(text, org)
    msg = str(info.value)
    assert "p.yaml:8:9: the last route branch needs no 'when'" in msg
    assert "state 'b' is a dead end" in msg
    assert "state 'c' is unreachable" in msg


def test_task_needs_exactly_one_way_to_name_who_acts(org: Org) -> None:
    text = """\
process: who
title: Who
start: {to: a}
states:
  a:
    task:
      role: clerk
      roles: [vp]
      actions: {ok: {to: b}}
  b: {final: true}
"""
    with pytest.raises(
        DefinitionError,
        match=r"p.yaml:6:5: .*exactly one of 'role', 'role_from', 'roles' or 'assignees'",
    ):
        build(text, org)


def test_schedules_that_could_never_start_are_refused_up_front(org: Org) -> None:
    text = """\
process: sched
title: Sched
variables:
  n: {type: integer, max: 10}
  d: {type: date}
start: {roles: [vp], require: [n], accept: [d], to: a}
schedules:
  - {name: zero, every: {hours: 0}, as: bob, set: {n: 1}}
  - {name: stranger, cron: "0 8 * * 1", as: ann, set: {n: 1}}
  - {name: typed, cron: "0 8 * * 1", as: bob, set: {n: 50, d: today}}
  - {name: short, cron: "0 8 * * 1", as: bob}
states:
  a: {task: {role: clerk, actions: {ok: {to: b}}}}
  b: {final: true}
"""
    with pytest.raises(DefinitionError) as info:
        build(text, org)
    msg = str(info.value)
    assert "p.yaml:8:18: 'every' needs a number greater than 0" in msg
    assert "user 'ann' may not start this process (start.roles: vp)" in msg
    assert "must be at most 10, got 50" in msg
    assert "expected a date as YYYY-MM-DD, got 'today'" in msg
    assert "the schedule must set n (start.require)" in msg


def test_a_single_file_sees_the_calendars_beside_org_yaml(tmp_path: Path) -> None:
    (tmp_path / "calendars").mkdir()
    (tmp_path / "org.yaml").write_text((PROCESSES / "org.yaml").read_text("utf-8"), "utf-8")
    (tmp_path / "calendars" / "shop.yaml").write_text(
        'calendar: shop\nbusiness_hours: {start: "09:00", end: "17:30"}\n', "utf-8"
    )
    proc = tmp_path / "p.yaml"
    proc.write_text(
        "process: p\ntitle: P\ncalendar: shop\nstart: {to: a}\nstates:\n"
        "  a: {task: {role: complaint_clerk, actions: {ok: {to: b}}}}\n  b: {final: true}\n",
        "utf-8",
    )
    catalog = load_catalog([proc], tmp_path / "org.yaml")
    assert catalog.processes["p"].calendar.name == "shop"
    (tmp_path / "calendars" / "shop.yaml").unlink()
    with pytest.raises(DefinitionError, match="unknown calendar 'shop'"):
        load_catalog([proc], tmp_path / "org.yaml")


SCHEDULED_BY_DAN = """\
process: sched
title: Sched
owner_role: clerk
start: {roles: [gm], to: a}
schedules:
  - {name: weekly, cron: "0 8 * * 1", as: dan}
states:
  a: {task: {role: gm, actions: {ok: {to: b}}}}
  b: {final: true}
"""


def test_an_absent_schedule_user_is_no_definition_error(org: Org) -> None:
    # dan is inactive (delegate eve): who is away is a fact of the day, not of the file
    assert not org.users["dan"].active
    proc = build(SCHEDULED_BY_DAN, org)
    assert (proc.spec.schedules[0].requester, proc.spec.owner_role) == ("dan", "clerk")


def test_a_stored_version_compiles_whoever_has_left_the_org(org: Org) -> None:
    from engine.process import compile_process
    from engine.yamlsafe import load_text

    gone = SCHEDULED_BY_DAN.replace("as: dan", "as: ghost")
    with pytest.raises(DefinitionError, match=r"p.yaml:6:39: unknown user 'ghost'"):
        build(gone, org)  # validate and deploy still name the typo
    proc = compile_process(load_text(gone, "p.yaml"), org, people=False)
    assert proc.spec.schedules[0].requester == "ghost"


def test_owner_role_must_be_a_declared_role(org: Org) -> None:
    text = SCHEDULED_BY_DAN.replace("owner_role: clerk", "owner_role: boss")
    with pytest.raises(DefinitionError, match=r"p.yaml:3:1: unknown role 'boss'"):
        build(text, org)
