"""The petition process (信访, 篇7-9) through the CLI, with time passed in by --now.

Every end state is reached: closed (answered, no review asked in time), forwarded,
not_accepted, review_upheld and review_revised; the 60-day clock, its one extension
(at most 30 days, the leader's approval, the petitioner told), the reminders and the
escalations are fired by ``tick``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import PROCESSES, Shell

DEPLOYED = "2026-09-30T09:00:00+08:00"
REGISTERED = "2026-09-30T10:00:00+08:00"  # day 60 is Sun 29 Nov: due by the end of Mon 30 Nov
DUE = "2026-12-01T00:00:00+08:00"


@pytest.fixture
def sh(db_url: str) -> Shell:
    shell = Shell(db_url)
    shell.ok(["deploy", str(PROCESSES / "petition.yaml")], now=DEPLOYED)
    return shell


def sets(**values: str) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def register(sh: Shell, now: str = REGISTERED, user: str = "xie.hong") -> dict[str, Any]:
    petition = sets(
        petitioner="张三",
        contact="13900000000",
        id_number="450100198001010011",
        channel="letter",
        subject="拆迁补偿款未到位",
        content="补偿款拖欠半年",
    )
    return sh.js(["start", "petition", "--as", user, *petition], now=now)


def act_args(
    inst: dict[str, Any], action: str, user: str, values: dict[str, str], comment: str | None
) -> list[str]:
    [task] = inst["tasks"]
    args = ["act", task["id"], action, "--as", user, *sets(**values)]
    return args + (["--comment", comment] if comment else [])


def act(
    sh: Shell,
    inst: dict[str, Any],
    action: str,
    user: str,
    now: str,
    comment: str | None = None,
    **values: str,
) -> dict[str, Any]:
    return sh.js(act_args(inst, action, user, values, comment), now=now)


def refused(
    sh: Shell, inst: dict[str, Any], action: str, user: str, now: str, match: str, **values: str
) -> None:
    sh.refused(act_args(inst, action, user, values, None), match, now=now)


def handled(sh: Shell, inst: dict[str, Any]) -> dict[str, Any]:
    inst = act(
        sh,
        inst,
        "assign",
        "xie.hong",
        "2026-09-30T11:00:00+08:00",
        handling_unit="城建科",
        leader_instructions="请城建科核实",
    )
    inst = act(
        sh,
        inst,
        "report_result",
        "han.bo",
        "2026-10-20T10:00:00+08:00",
        findings="情况属实",
        proposed_answer="十日内补发",
    )
    return act(
        sh, inst, "approve_answer", "luo.gang", "2026-10-21T10:00:00+08:00", leader_opinion="同意"
    )


def answered(sh: Shell, inst: dict[str, Any], delivered: str = "2026-10-24") -> dict[str, Any]:
    return act(
        sh,
        inst,
        "answer",
        "xie.hong",
        "2026-10-22T10:00:00+08:00",
        answer="十日内补发",
        answer_method="written",
        answer_delivered_on=delivered,
    )


def actions(sh: Shell, inst: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [
        (e["actor"], e["action"], e["to_state"]) for e in sh.js(f"audit --instance {inst['id']}")
    ]


def test_assigned_handled_answered_and_closed_when_no_review_is_asked(sh: Shell) -> None:
    inst = register(sh)
    assert (inst["state"], inst["variables"]["first_responder"]) == ("registering", "xie.hong")
    assert inst["tasks"][0]["due_at"] == DUE
    inst = handled(sh, inst)
    assert inst["state"] == "answering" and inst["tasks"][0]["role"] == "petition_clerk"
    inst = answered(sh, inst)
    assert inst["state"] == "review_window" and inst["tasks"][0]["role"] == "review_office"
    # 30 days after Sat 24 Oct, when the written answer arrived: Mon 23 Nov
    assert inst["tasks"][0]["due_at"] == "2026-11-24T00:00:00+08:00"
    sh.ok("tick", now="2026-11-23T23:59:00+08:00")
    assert sh.js(f"show {inst['id']}")["state"] == "review_window"
    sh.ok("tick", now="2026-11-24T00:00:05+08:00")
    done = sh.js(f"show {inst['id']}", now="2026-11-24T00:00:05+08:00")
    assert (done["state"], done["status"], done["outcome"]) == ("closed", "completed", "answered")
    assert actions(sh, inst)[-2:] == [
        ("system", "deadline", "review_window"),
        ("system", "escalation", "closed"),
    ]
    sh.ok("tick", now="2026-12-31T00:00:00+08:00")  # the 60-day timers were cancelled
    assert [a for _, a, _ in actions(sh, inst)].count("escalation") == 1


def test_forwarded_outside_the_remit_and_the_petitioner_told(sh: Shell) -> None:
    inst = register(sh)
    refused(
        sh,
        inst,
        "forward",
        "xie.hong",
        REGISTERED,
        "petitioner_told: required",
        forwarded_to="市人社局",
    )
    inst = act(
        sh,
        inst,
        "forward",
        "xie.hong",
        "2026-09-30T11:00:00+08:00",
        forwarded_to="市人社局",
        petitioner_told="当面告知转送市人社局",
    )
    assert (inst["state"], inst["status"], inst["outcome"]) == (
        "forwarded",
        "completed",
        "forwarded",
    )


def test_not_accepted_when_it_belongs_to_the_courts(sh: Shell) -> None:
    inst = register(sh)
    inst = act(
        sh,
        inst,
        "not_accepted",
        "xie.hong",
        "2026-09-30T11:00:00+08:00",
        not_accepted_reason="已进入诉讼程序",
        petitioner_told="告知向法院提出",
    )
    assert (inst["status"], inst["outcome"]) == ("completed", "not_accepted")


def test_the_handling_unit_returns_it_and_the_clerk_forwards_it(sh: Shell) -> None:
    inst = register(sh)
    inst = act(sh, inst, "assign", "xie.hong", "2026-09-30T11:00:00+08:00", handling_unit="城建科")
    inst = act(
        sh,
        inst,
        "return_to_clerk",
        "han.bo",
        "2026-10-08T10:00:00+08:00",
        return_reason="属区住建局职责",
    )
    assert inst["state"] == "registering"
    inst = act(
        sh,
        inst,
        "forward",
        "xie.hong",
        "2026-10-08T11:00:00+08:00",
        forwarded_to="区住建局",
        petitioner_told="电话告知",
    )
    assert inst["outcome"] == "forwarded"


@pytest.mark.parametrize(
    ("decision", "outcome"), [("uphold", "review_upheld"), ("revise", "review_revised")]
)
def test_review_requested_in_time_and_decided(sh: Shell, decision: str, outcome: str) -> None:
    inst = register(sh)
    inst = act(
        sh,
        inst,
        "answer_directly",
        "xie.hong",
        "2026-09-30T11:00:00+08:00",
        answer="政策解答",
        answer_method="phone",
        answer_delivered_on="2026-09-30",
    )
    assert inst["state"] == "review_window"
    inst = act(
        sh,
        inst,
        "request_review",
        "du.wen",
        "2026-10-20T10:00:00+08:00",
        review_request="不服答复",
        review_requested_on="2026-10-19",
    )
    assert inst["state"] == "review" and inst["tasks"][0]["due_at"] == "2026-11-19T00:00:00+08:00"
    sh.ok("tick", now="2026-11-14T00:00:01+08:00")  # the reminder 5 days before
    assert actions(sh, inst)[-1] == ("system", "reminder", "review")
    inst = act(sh, inst, decision, "du.wen", "2026-11-15T10:00:00+08:00", review_opinion="复查意见")
    assert (inst["status"], inst["outcome"]) == ("completed", outcome)


def test_one_extension_of_at_most_thirty_days_with_the_leader_and_the_petitioner_told(
    sh: Shell,
) -> None:
    inst = register(sh)
    inst = act(sh, inst, "assign", "xie.hong", "2026-09-30T11:00:00+08:00", handling_unit="城建科")
    inst = act(
        sh,
        inst,
        "request_extension",
        "han.bo",
        "2026-11-20T10:00:00+08:00",
        extension_reason="涉及三个部门，需联合调查",
    )
    assert inst["state"] == "extension_review" and inst["tasks"][0]["role"] == "petition_leader"
    refused(
        sh,
        inst,
        "approve_extension",
        "han.bo",
        "2026-11-20T11:00:00+08:00",
        "needs role petition_leader",
        extension_days="30",
    )
    refused(
        sh,
        inst,
        "approve_extension",
        "luo.gang",
        "2026-11-20T11:00:00+08:00",
        "at most 30 days in total; this would make 45",
        extension_days="45",
    )
    inst = act(
        sh, inst, "approve_extension", "luo.gang", "2026-11-20T11:00:00+08:00", extension_days="30"
    )
    # the petitioner is told why, by the clerk who registered it
    assert inst["state"] == "telling_extension" and inst["tasks"][0]["role"] == "petition_clerk"
    new_due = inst["tasks"][0]["due_at"]
    assert new_due > DUE
    trail = sh.js(f"audit --instance {inst['id']} --action approve_extension")
    assert (
        trail[0]["data"]["extended"]["from"] == DUE
        and trail[0]["data"]["extended"]["to"] == new_due
    )
    assert trail[0]["data"]["extended"]["amount"] == "30"
    inst = act(
        sh,
        inst,
        "petitioner_told",
        "xie.hong",
        "2026-11-21T09:00:00+08:00",
        extension_notice="书面告知延期30日及理由",
    )
    assert inst["state"] == "handling" and inst["tasks"][0]["due_at"] == new_due
    assert inst["variables"]["extension_reason"] == "涉及三个部门，需联合调查"
    refused(
        sh,
        inst,
        "request_extension",
        "han.bo",
        "2026-12-10T10:00:00+08:00",
        "already extended once",
        extension_reason="还需时间",
    )
    # the old deadline passes without a reminder or an escalation; the new one does not
    sh.ok("tick", now="2026-12-02T00:00:00+08:00")
    assert [a for _, a, _ in actions(sh, inst) if a in ("deadline", "escalation")] == []
    sh.ok("tick", now=new_due)
    assert [a for _, a, _ in actions(sh, inst) if a in ("deadline", "escalation")] == [
        "deadline",
        "escalation",
    ]


def test_an_overdue_petition_is_escalated_to_the_leader_then_the_next_level(sh: Shell) -> None:
    inst = register(sh)
    inst = act(sh, inst, "assign", "xie.hong", "2026-09-30T11:00:00+08:00", handling_unit="城建科")
    before = sh.js("tasks --overdue", now="2026-11-30T23:59:59+08:00")
    assert before == []
    first = sh.ok("tick", now="2026-12-01T00:00:01+08:00")
    assert "notify luo.gang" in first.err  # the leader supervises (督办)
    overdue = sh.js("tasks --overdue --as han.bo", now="2026-12-01T00:00:01+08:00")
    assert [t["instance_id"] for t in overdue] == [inst["id"]] and overdue[0]["overdue"] is True
    second = sh.ok("tick", now="2026-12-11T00:00:01+08:00")  # 10 days later
    assert "notify du.wen" in second.err and "notify luo.gang" in second.err
    trail = [e for e in sh.js(f"audit --instance {inst['id']}") if e["actor"] == "system"]
    assert [(e["action"], e["data"]["planned_at"]) for e in trail] == [
        ("reminder", "2026-11-21T00:00:00+08:00"),
        ("reminder", "2026-11-28T00:00:00+08:00"),
        ("deadline", DUE),
        ("escalation", DUE),
        ("escalation", "2026-12-11T00:00:00+08:00"),
    ]
    # nothing fires twice
    assert sh.js("tick", now="2026-12-20T00:00:00+08:00")["fired"] == 0


def test_the_handling_unit_never_sees_who_the_petitioner_is(sh: Shell) -> None:
    inst = register(sh)
    unit = sh.js(f"show {inst['id']} --as han.bo")["variables"]
    assert unit["petitioner"] == "***" and unit["contact"] == "***" and unit["id_number"] == "***"
    assert unit["content"] == "补偿款拖欠半年"  # the matter itself, to investigate it
    for user in ("xie.hong", "luo.gang", "du.wen"):
        assert sh.js(f"show {inst['id']} --as {user}")["variables"]["petitioner"] == "张三"


def test_only_a_petition_clerk_registers(sh: Shell) -> None:
    petition = sets(petitioner="a", contact="b", subject="c", content="d")
    sh.refused(
        ["start", "petition", "--as", "han.bo", *petition], "may not start petition", now=REGISTERED
    )


def test_first_responder_owns_the_petition(db_url: str, tmp_path: Path) -> None:
    """首问责任制: a second clerk cannot take over the steps of the one who registered it."""
    (tmp_path / "petition.yaml").write_text(
        (PROCESSES / "petition.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    org = (PROCESSES / "org.yaml").read_text(encoding="utf-8")
    org += "  qin.yu: {name: 秦雨, roles: [petition_clerk]}\n"
    (tmp_path / "org.yaml").write_text(org, encoding="utf-8")
    sh = Shell(db_url, processes=tmp_path)
    sh.ok("deploy", now=DEPLOYED)
    inst = register(sh)
    assert [t["id"] for t in sh.js("tasks --as qin.yu")] == [inst["tasks"][0]["id"]]
    refused(sh, inst, "assign", "qin.yu", REGISTERED, "首问责任制", handling_unit="城建科")
    inst = handled(sh, inst)
    refused(
        sh,
        inst,
        "answer",
        "qin.yu",
        "2026-10-22T10:00:00+08:00",
        "首问责任制",
        answer="x",
        answer_method="phone",
        answer_delivered_on="2026-10-22",
    )
    inst = answered(sh, inst)
    assert inst["state"] == "review_window"
