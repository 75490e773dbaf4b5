"""What a recipient receives, on every channel, through real servers on loopback.

A hostile value (template syntax, a script tag, a markdown link, JSON-breaking quotes)
must arrive inert in every format; the deadline is in the recipient's zone; the commands
to act are there; a confidential variable is never in any message.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from standardwebhooks import Webhook

from engine.org import Contacts, UserSpec
from notifiers.channels.base import Message
from notifiers.config import load_channels_text
from notifiers.messages import RenderError, build_message
from notifiers.outbox import Outlet, dispatch
from notifiers.routing import Router
from service.display import display_tz
from service.timekeeper import tick
from service.workflow import Workflow
from storage.store import Store
from tests.notifiers.channels.sinks import HttpSink, Mailbox, Reply, Request
from tests.timeproc import at

SECRET = "whsec_" + base64.b64encode(b"render-secret-render-sec").decode()
EVIL = '{{ 7*7 }} <script>alert(1)</script> [pay](http://evil.example) "}, "x": "y <@all>'
BASE = {
    "process": "chase",
    "instance_id": "i-1",
    "task_id": "i-1-1",
    "state": "work",
    "due_at": "2026-10-09T00:00:00+08:00",
}


def person(**contacts: Any) -> UserSpec:
    return UserSpec(name="赵磊", contacts=Contacts(email="zhao.lei@example.com", **contacts))


# ---------------------------------------------------------------------- every channel


def robots(request: Request) -> Reply:
    return Reply(200, {"errcode": 0, "code": 0, "errmsg": "ok", "msg": "success"})


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as running:
        running.default = robots
        yield running


def every_channel(sink: HttpSink, smtp: Controller) -> Outlet:
    text = (
        "channels:\n"
        f"  mail: {{type: email, host: 127.0.0.1, port: {smtp.port}, mode: plain,"
        " sender: 'Shenpi <shenpi@example.cn>', timeout: 5}\n"
        f"  hook: {{type: webhook, url: '{sink.url}/hook', secrets: ['${{HOOK}}'], timeout: 5}}\n"
        f"  ding: {{type: dingtalk, token: '${{T}}', url: '{sink.url}/ding', timeout: 5}}\n"
        f"  wecom: {{type: wecom, key: '${{T}}', url: '{sink.url}/wecom', timeout: 5}}\n"
        f"  lark: {{type: feishu, token: '${{T}}', url: '{sink.url}/lark/', timeout: 5}}\n"
    )
    return Outlet.of(load_channels_text(text, "channels.yaml", {"HOOK": SECRET, "T": "tok"}))


def send_everywhere(sink: HttpSink, smtp: Controller, message: Message) -> None:
    for name, channel in every_channel(sink, smtp).channels.items():
        delivery = channel.send(message)
        assert delivery.ok, f"{name}: {delivery.detail}"


def mail_parts(mailbox: Mailbox) -> tuple[EmailMessage, str, str]:
    (envelope,) = mailbox.messages
    mail = message_from_bytes(envelope.content, policy=policy.default)
    assert isinstance(mail, EmailMessage)
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    return mail, text.get_content(), html.get_content()


def bodies(sink: HttpSink) -> dict[str, Any]:
    return {r.path.strip("/").split("/")[0]: r for r in sink.requests}


def test_a_hostile_value_arrives_inert_on_every_channel(
    sink: HttpSink, smtp: Controller, mailbox: Mailbox
) -> None:
    data = BASE | {"title": EVIL, "by": "wang.fang", "action": "send_back", "comment": EVIL}
    send_everywhere(sink, smtp, build_message("d-1", "task_assigned", data, "zhao.lei", person()))
    mail, text, html = mail_parts(mailbox)
    # template syntax is data: never evaluated, in any format
    for body in (text, html, str(mail["subject"])):
        assert "{{ 7*7 }}" in body and "49" not in body
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<a href="http://evil.example"' not in html
    assert EVIL in text  # plain text is plain
    got = bodies(sink)
    hook = got["hook"]
    payload = Webhook(SECRET).verify(hook.body, {k: v for k, v in hook.headers.items()})
    assert payload["data"]["title"] == EVIL and payload["data"]["comment"] == EVIL
    assert set(payload) == {"type", "timestamp", "data"}  # the quotes opened no key
    assert "x" not in payload["data"]
    ding = got["ding"].json()["markdown"]["text"]
    wecom = got["wecom"].json()["markdown"]["content"]
    card = got["lark"].json()["card"]
    assert card["header"]["title"]["tag"] == "plain_text"  # shown as text, never parsed
    lark = card["elements"][0]["text"]["content"]
    for body in (ding, wecom, lark):
        assert "[pay](http" not in body and r"\[pay\]\(http" in body
        assert "<script>" not in body and "<@all>" not in body
        assert "49" not in body.replace("\\", "")
    assert set(got["ding"].json()) == {"msgtype", "markdown", "at"}


# CR and LF, and every other character str.splitlines() breaks at (which Python's email
# package refuses in a header too, but only when the e-mail is built, after routing)
BREAKS = ["\r\n", "\n", "\r", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c"]


@pytest.mark.parametrize("breaker", BREAKS)
def test_a_line_break_never_reaches_an_email_header(
    breaker: str, sink: HttpSink, smtp: Controller, mailbox: Mailbox
) -> None:
    title = f"Pay now{breaker}Bcc: everyone@example.com"
    with pytest.raises(RenderError, match="line break"):
        build_message("d-1", "task_assigned", BASE | {"title": title}, "zhao.lei", person())
    # a comment may hold line breaks: it is body text, never a header
    data = BASE | {"title": "ok", "by": "a", "action": "b", "comment": f"x{breaker}Bcc: e@x.cn"}
    send_everywhere(sink, smtp, build_message("d-2", "task_assigned", data, "zhao.lei", person()))
    mail, _, _ = mail_parts(mailbox)
    assert mail["Bcc"] is None and mailbox.messages[0].rcpt_tos == ["zhao.lei@example.com"]


# ---------------------------------------------------------------------- what it says


def test_the_deadline_is_in_the_recipients_zone_in_every_format(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    berlin = build_message("d", "task_assigned", BASE, "zhao.lei", person(tz="Europe/Berlin"))
    assert "due 2026-10-08 18:00 (Europe/Berlin)" in berlin.text
    assert "2026-10-08 18:00 (Europe/Berlin)" in (berlin.html or "")
    assert r"2026\-10\-08 18:00 \(Europe/Berlin\)" in (berlin.markdown or "")
    assert berlin.card is not None and r"2026\-10\-08 18:00" in berlin.card.text
    assert berlin.data["due_at"] == "2026-10-08T18:00:00+02:00"  # machines: ISO, same zone
    reminder = build_message("d", "reminder", BASE, "zhao.lei", person(tz="Europe/Berlin"))
    assert reminder.subject == "[chase] Reminder: work is due 2026-10-08 18:00 (Europe/Berlin)"
    zh = build_message("d", "task_assigned", BASE, "zhao.lei", person(lang="zh", tz="UTC"))
    assert "截止 2026-10-08 16:00 (UTC)" in zh.text
    tokyo = build_message("d", "task_assigned", BASE, "zhao.lei", person(), ZoneInfo("Asia/Tokyo"))
    assert "due 2026-10-09 01:00 (Asia/Tokyo)" in tokyo.text  # the dispatcher's zone
    monkeypatch.setenv("SHENPI_TZ", "America/New_York")  # neither: the display zone
    display_tz.cache_clear()
    try:
        plain = build_message("d", "task_assigned", BASE, "zhao.lei", person())
    finally:
        monkeypatch.undo()
        display_tz.cache_clear()
    assert "due 2026-10-08 12:00 (America/New_York)" in plain.text


def test_the_message_says_how_to_act_and_look_in_every_format() -> None:
    data = BASE | {"actions": ["approve", "send_back"]}
    m = build_message("d", "task_assigned", data, "zhao.lei", person())
    assert "To act: python run.py act i-1-1 approve --as zhao.lei" in m.text
    assert "To act: python run.py act i-1-1 send_back --as zhao.lei" in m.text
    assert "Details: python run.py show i-1 --as zhao.lei" in m.text
    assert "python run.py act i-1-1 approve --as zhao.lei" in (m.html or "")
    assert r"python run\.py act i\-1\-1 approve \-\-as zhao\.lei" in (m.markdown or "")
    generic = build_message("d", "overdue", BASE, "zhao.lei", person(lang="zh"))
    assert "办理：python run.py act i-1-1 ACTION --as zhao.lei" in generic.text
    assert "详情：python run.py show i-1 --as zhao.lei" in generic.text
    done = build_message("d", "completed", BASE | {"outcome": "ok"}, "zhao.lei", person())
    assert "run.py act" not in done.text and "run.py show i-1" in done.text
    esc = BASE | {"level": 1, "reassigned_to": "user:max", "taken_from_you": True}
    taken = build_message("d", "escalated", esc, "zhao.lei", person())
    assert "run.py act" not in taken.text and "run.py show i-1" in taken.text
    assert "It is no longer yours to act on." in taken.text
    zh = build_message("d", "escalated", esc, "zhao.lei", person(lang="zh"))
    assert "此任务已不再由您办理。" in zh.text and "办理：" not in zh.text


def test_a_task_sent_back_says_who_chose_what_and_why_in_both_languages() -> None:
    data = BASE | {"by": "chen.jun", "action": "send_back", "comment": "请补充发票"}
    en = build_message("d", "task_assigned", data, "zhao.lei", person())
    assert "chen.jun chose send_back and wrote: 请补充发票" in en.text
    zh = build_message("d", "task_assigned", data, "zhao.lei", person(lang="zh"))
    assert "chen.jun 选择了 send_back，留言：请补充发票" in zh.text
    quiet = build_message("d", "task_assigned", data | {"comment": None}, "zhao.lei", person())
    assert "chen.jun chose send_back." in quiet.text


# ---------------------------------------------------------------------- confidential

SECRET_PROCESS = """\
process: payroll
title: Payroll
confidential_to: [service_director]
variables:
  salary: {type: string, confidential: true}
  note: {type: string}
start: {to: check, accept: [salary, note]}
states:
  check:
    title: Check
    deadline:
      working_days: 1
      reminders: [{before: {hours: 2}}]
      escalations:
        - {notify: [service_director]}
    task:
      role: complaint_clerk
      actions:
        done: {to: paid}
  paid: {final: true}
"""


class Recorder:
    """A channel that keeps every message whole, so each format can be searched."""

    def __init__(self) -> None:
        self.name = "recorder"
        self.messages: list[Message] = []

    def send(self, message: Message) -> Any:
        from notifiers.channels.base import ok

        self.messages.append(message)
        return ok()


def test_a_confidential_variable_is_in_no_message_of_any_event(db_url: str, procs: Path) -> None:
    """Notices carry no variables today; this fails the day one does without masking."""
    (procs / "payroll.yaml").write_text(SECRET_PROCESS, encoding="utf-8")
    wf = Workflow(Store.open(db_url), procs)
    wf.deploy(now=at("2026-09-29T09:00"))
    salary = "SALARY-98765-43210"
    snap = wf.start("payroll", "wang.fang", {"salary": salary, "note": "n"}, at("2026-09-30T10:00"))
    recorder = Recorder()
    outlet = Outlet({"recorder": recorder}, Router({"recorder": "console"}, preferences=False))
    dispatch(wf.store, wf.org, outlet, at("2026-09-30T10:01"))
    assert tick(wf, at("2026-10-09T00:00")).fired >= 2  # reminder, overdue, escalation
    dispatch(wf.store, wf.org, outlet, at("2026-10-09T00:00"))
    wf.act(snap.tasks[0].id, "done", "zhao.lei", comment="paid", now=at("2026-10-09T09:00"))
    dispatch(wf.store, wf.org, outlet, at("2026-10-09T09:01"))
    events = {m.event for m in recorder.messages}
    assert {"shenpi.task_assigned", "shenpi.escalated", "shenpi.completed"} <= events
    for m in recorder.messages:
        card = m.card.text if m.card else ""
        everything = [m.subject, m.text, m.html or "", m.markdown or "", card, json.dumps(m.data)]
        assert not [part for part in everything if salary in part], m.event


def test_completion_and_rejection_say_who_decided_and_why_in_both_languages() -> None:
    data = BASE | {"outcome": "rejected", "by": "chen.jun", "action": "reject"}
    en = build_message("d", "completed", data | {"comment": "超出预算"}, "wang.fang", person())
    assert "is finished: rejected. chen.jun chose reject and wrote: 超出预算" in en.text
    zh = build_message(
        "d", "completed", data | {"comment": "超出预算"}, "wang.fang", person(lang="zh")
    )
    assert "已办结：rejected。chen.jun 选择了 reject，留言：超出预算" in zh.text
    quiet = build_message("d", "completed", data, "wang.fang", person())
    assert quiet.text.splitlines()[0].endswith("finished: rejected. chen.jun chose reject.")


def test_a_send_back_and_a_withdrawal_carry_their_reason() -> None:
    data = BASE | {"by": "chen.jun", "title": "补充材料", "comment": "请补充发票"}
    en = build_message("d", "sent_back", data, "wang.fang", person())
    assert en.subject == "[chase] Request i-1 sent back: 补充材料"
    assert "chen.jun sent request i-1 back to you: 补充材料 (task i-1-1)" in en.text
    assert "Reason: 请补充发票" in en.text and "Reason: 请补充发票" in (en.markdown or "")
    zh = build_message("d", "sent_back", data, "wang.fang", person(lang="zh"))
    assert "chen.jun 退回了申请 i-1，请重新办理：补充材料（任务 i-1-1）" in zh.text
    assert "退回理由：请补充发票" in zh.text
    gone = build_message(
        "d", "withdrawn", BASE | {"by": "wang.fang", "comment": "不买了"}, "zhao.lei", person()
    )
    assert "request i-1 was withdrawn by wang.fang" in gone.text and "Reason: 不买了" in gone.text


def test_an_event_without_its_own_template_still_carries_the_comment() -> None:
    data = BASE | {"by": "li.qiang", "comment": "请王芳处理"}
    m = build_message("d", "handed_over", data, "wang.fang", person())
    assert m.text.splitlines()[0] == (
        "[chase] handed_over on instance i-1 (task i-1-1) by li.qiang. Comment: 请王芳处理"
    )
    plain = build_message("d", "something_new", {"process": "p", "instance_id": "i"}, "u", person())
    assert plain.text.splitlines()[0] == "[p] something_new on instance i."
