"""complaint (篇1 rule 3, "及时答复客户和回复上级"): a case a superior body forwarded is answered
to that body too. The reply and its date are required with the answer (which stops the 3/5
working-day clock, so the clock covers the reply) and carried by the closing record; a case
the customer brought directly needs neither."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.helpers import Shell

from . import cli

RECEIVED = "2026-09-30T10:00:00+08:00"  # a Wednesday; a complaint is due 2026-10-11T00:00
ANSWERED = "2026-10-09T15:00:00+08:00"


@pytest.fixture
def sh(db_url: str) -> Shell:
    return cli(db_url, "complaint", deployed_at="2026-09-01T09:00:00+08:00")


def start(sh: Shell, *extra: str) -> dict[str, Any]:
    base = ["start", "complaint", "--as", "wang.fang", "--set", "kind=complaint"]
    base += ["--set", "customer=刘女士", "--set", "contact=13800000000"]
    base += ["--set", "content=停电三天无人处理", *extra]
    return sh.js(base, now=RECEIVED)


def handling(sh: Shell, inst: dict[str, Any]) -> str:
    """Accept the case; returns the handler's task id."""
    task = inst["tasks"][0]["id"]
    done = sh.js(
        f"act {task} accept --as zhao.lei --set first_contact=已联系",
        now="2026-09-30T10:30:00+08:00",
    )
    return done["tasks"][0]["id"]


def resolve(task: str, *extra: str) -> list[str]:
    return ["act", task, "resolve", "--as", "li.qiang", "--set", "findings=线路故障"] + [
        "--set",
        "resolution=已恢复供电",
        *extra,
    ]


FORWARDED = ("--set", "source=superior", "--set", "superior_body=市供电局客户服务中心")


def test_a_forwarded_case_names_the_superior_body(sh: Shell) -> None:
    sh.refused(
        ["start", "complaint", "--as", "wang.fang", "--set", "kind=complaint"]
        + ["--set", "customer=刘女士", "--set", "contact=1", "--set", "content=x"]
        + ["--set", "source=superior"],
        "superior_body: required by start when source == 'superior'",
        now=RECEIVED,
    )
    assert sh.js("instances --process complaint") == []
    inst = start(sh, *FORWARDED)
    assert inst["variables"]["source"] == "superior"
    assert inst["variables"]["received_on"] == "2026-09-30"
    assert inst["variables"]["superior_body"] == "市供电局客户服务中心"


def test_a_forwarded_case_is_not_answered_without_the_reply_to_the_superior(sh: Shell) -> None:
    inst = start(sh, *FORWARDED)
    task = handling(sh, inst)
    sh.refused(
        resolve(task),
        "superior_reply: required by action 'resolve' when source == 'superior'",
        now=ANSWERED,
    )
    sh.refused(
        resolve(task, "--set", "superior_reply=已书面回复"),
        "superior_replied_on: required by action 'resolve' when source == 'superior'",
        now=ANSWERED,
    )
    for bad in ("2026-09-29", "2026-10-10"):  # before the receipt; after today
        sh.refused(
            resolve(
                task, "--set", "superior_reply=已书面回复", "--set", f"superior_replied_on={bad}"
            ),
            "the reply to the superior body is dated between the day the complaint was received",
            now=ANSWERED,
        )
    shown = sh.js(f"show {inst['id']} --as li.qiang", now=ANSWERED)
    assert shown["state"] == "handling" and "superior_reply" not in shown["variables"]
    # on the day of receipt and on the answer's own day are both fine
    reply = ("--set", "superior_reply=已书面回复市局", "--set", "superior_replied_on=2026-10-09")
    answered = sh.js(resolve(task, *reply), now=ANSWERED)
    assert answered["state"] == "callback"
    # the answer stopped the clock: the reply to the superior was within the 3 working days
    [deadline] = [e for e in sh.js(f"audit --instance {inst['id']}") if e["action"] == "resolve"]
    assert deadline["data"]["input"]["superior_replied_on"] == "2026-10-09"


def test_the_closing_record_carries_the_reply_and_show_lists_it(sh: Shell) -> None:
    inst = start(sh, *FORWARDED)
    task = handling(sh, inst)
    reply = ("--set", "superior_reply=已电话回复市局", "--set", "superior_replied_on=2026-10-09")
    callback = sh.js(resolve(task, *reply), now=ANSWERED)["tasks"][0]["id"]
    close = ["act", callback, "close", "--as", "wang.fang", "--set", "callback_result=satisfied"]
    sh.refused(
        [*close, "--set", "superior_replied_on=2026-10-13"],  # tomorrow
        "dated between the day the complaint was received and today",
        now="2026-10-12T09:00:00+08:00",
    )
    # the clerk completes the reply with the callback's result, sent today
    done = sh.js(
        [
            *close,
            "--set",
            "superior_reply=客户满意，已书面回复市局",
            "--set",
            "superior_replied_on=2026-10-12",
        ],
        now="2026-10-12T09:00:00+08:00",
    )
    assert (done["status"], done["outcome"]) == ("completed", "resolved")
    shown = sh.js(f"show {inst['id']} --as chen.jun")["variables"]
    assert (shown["superior_reply"], shown["superior_replied_on"]) == (
        "客户满意，已书面回复市局",
        "2026-10-12",
    )


def test_the_director_answering_a_forwarded_case_replies_too(sh: Shell) -> None:
    inst = start(sh, *FORWARDED)
    task = handling(sh, inst)
    director = sh.js(
        f"act {task} escalate --as li.qiang --set escalation_reason=涉及赔偿", now=ANSWERED
    )["tasks"][0]["id"]
    resolve_ = ["act", director, "resolve", "--as", "chen.jun", "--set", "resolution=赔偿"]
    sh.refused(resolve_, "superior_reply: required by action 'resolve'", now=ANSWERED)
    reply = ["--set", "superior_reply=已报市局", "--set", "superior_replied_on=2026-09-30"]
    assert sh.js(resolve_ + reply, now=ANSWERED)["state"] == "callback"


def test_a_customers_own_complaint_needs_no_reply_to_a_superior(sh: Shell) -> None:
    inst = start(sh)
    assert inst["variables"]["source"] == "customer"
    callback = sh.js(resolve(handling(sh, inst)), now=ANSWERED)["tasks"][0]["id"]
    done = sh.js(
        f"act {callback} close --as wang.fang --set callback_result=satisfied",
        now="2026-10-10T09:00:00+08:00",
    )
    assert done["outcome"] == "resolved" and "superior_reply" not in done["variables"]
