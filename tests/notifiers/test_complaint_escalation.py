"""Issue 10's "Done when", literally: the shipped complaint process, real servers, a fault.

An overdue complaint's escalation must reach the service director by e-mail (aiosmtpd) and
the service center's DingTalk group robot (a loopback sink that checks 加签 the way DingTalk
does), a receiver using the official ``standardwebhooks`` library verifies every webhook
delivery, and a failed robot send retried later reaches the group once, doubling nothing.
Only time is fake, passed in as ``now``; the robot's signature carries the real clock, as
DingTalk checks it against its own.
"""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from engine.org import load_org
from engine.yamlsafe import load_file
from notifiers.channels.smtp import message_id
from notifiers.messages import GROUP
from notifiers.outbox import Outlet, dispatch
from service.channels import load_outlet
from service.timekeeper import tick
from service.workflow import Workflow
from storage.store import Store
from tests.notifiers.channels.sinks import HttpSink, Mailbox, Reply, Request
from tests.notifiers.test_delivery import SECRET as HOOK_SECRET
from tests.notifiers.test_delivery import Receiver as HookReceiver
from tests.timeproc import ROOT, at

ROBOT_TOKEN = "svc-center-robot-token"
ROBOT_SECRET = "SECsvc+center/robot=="  # '+', '/' and '=' must be URL-encoded exactly once
DIRECTOR_DINGTALK = "chenjun01"
RECEIVED = at("2026-09-30T10:00")

CHANNELS = """\
channels:
  mail: {{type: email, host: 127.0.0.1, port: {smtp_port}, mode: plain,
         sender: 'Shenpi <shenpi@example.cn>', timeout: 5}}
  service_group_robot: {{type: dingtalk, url: '{robot_url}/robot/send',
                        token: '${{ROBOT_TOKEN}}', secret: '${{ROBOT_SECRET}}', timeout: 5}}
  erp: {{type: webhook, url: '{hook_url}/hooks/shenpi', secrets: ['${{HOOK_SECRET}}'],
        timeout: 5}}
route:
  task_assigned: [mail, erp]
  reminder: [mail, erp]
  overdue: [mail, erp]
  escalated: [mail, service_group_robot, erp]   # escalations also to the group robot
"""

# What the robot answers once, after checking the signature, before it accepts again.
FAULTS = {
    "http_500": Reply(500, {"errcode": -1, "errmsg": "internal error"}),
    "errcode_throttled": Reply(200, {"errcode": 130101, "errmsg": "send too fast"}),
}


class GroupRobot:
    """A DingTalk custom robot: token, 加签 (query decoded once) and freshness, then the body."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.faults: list[Reply] = []
        self.fault_for = ""  # the faults hit only messages naming this instance
        self.seen: list[dict[str, Any]] = []  # the messages naming it, accepted or not

    def __call__(self, request: Request) -> Reply:
        q = request.query
        if request.path != "/robot/send" or q.get("access_token") != ROBOT_TOKEN:
            self.refused.append("token")
            return Reply(200, {"errcode": 300001, "errmsg": "token is not exist"})
        ts = q.get("timestamp", "")
        digest = hmac.new(
            ROBOT_SECRET.encode(), f"{ts}\n{ROBOT_SECRET}".encode(), hashlib.sha256
        ).digest()
        fresh = ts.isdigit() and abs(int(ts) - time.time() * 1000) < 3_600_000
        if q.get("sign") != base64.b64encode(digest).decode() or not fresh:
            self.refused.append("sign")
            return Reply(200, {"errcode": 310000, "errmsg": "sign not match"})
        body = request.json()
        if self.fault_for and self.fault_for in json.dumps(body, ensure_ascii=False):
            self.seen.append(body)
            if self.faults:
                return self.faults.pop(0)
        self.accepted.append(body)
        return Reply(200, {"errcode": 0, "errmsg": "ok"})

    def accepted_for(self, instance_id: str) -> list[dict[str, Any]]:
        return [b for b in self.accepted if instance_id in json.dumps(b, ensure_ascii=False)]


@pytest.fixture
def robot() -> Iterator[tuple[HttpSink, GroupRobot]]:
    with HttpSink() as sink:
        sink.default = GroupRobot()
        yield sink, sink.default


@pytest.fixture
def hook() -> Iterator[tuple[HttpSink, HookReceiver]]:
    with HttpSink() as sink:
        sink.default = HookReceiver()
        yield sink, sink.default


def director() -> str:
    """Whoever holds service_director in the shipped org.yaml (not a name baked in)."""
    (uid,) = load_org(load_file(ROOT / "processes" / "org.yaml")).holders("service_director")
    return uid


def shipped_processes(folder: Path, robot_url: str, hook_url: str, smtp: Controller) -> Path:
    """The shipped processes folder, the director given a DingTalk id, and channels.yaml."""
    procs = folder / "processes"
    shutil.copytree(ROOT / "processes", procs)
    boss = director()
    org = procs / "org.yaml"
    text = org.read_text(encoding="utf-8")
    old = f"contacts: {{email: {boss}@example.com}}"
    assert text.count(old) == 1, "the director's contacts in org.yaml changed shape"
    new = f"contacts: {{email: {boss}@example.com, dingtalk: {DIRECTOR_DINGTALK}}}"
    org.write_text(text.replace(old, new), encoding="utf-8")
    channels = CHANNELS.format(smtp_port=smtp.port, robot_url=robot_url, hook_url=hook_url)
    (procs / "channels.yaml").write_text(channels, encoding="utf-8")
    return procs


def mails_to(mailbox: Mailbox, address: str) -> list[EmailMessage]:
    return [
        email.message_from_bytes(m.original_content, policy=default_policy)  # type: ignore[misc]
        for m in mailbox.messages
        if address in m.rcpt_tos
    ]


def statuses(store: Store) -> Counter[str]:
    return Counter(r["status"] for r in store.deliveries.list())


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_an_overdue_complaint_escalation_reaches_the_director_by_mail_and_group_robot(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    robot: tuple[HttpSink, GroupRobot],
    hook: tuple[HttpSink, HookReceiver],
    smtp: Controller,
    mailbox: Mailbox,
    fault: str,
) -> None:
    robot_sink, group = robot
    hook_sink, receiver = hook
    procs = shipped_processes(tmp_path, robot_sink.url, hook_sink.url, smtp)
    for var, value in [
        ("ROBOT_TOKEN", ROBOT_TOKEN),
        ("ROBOT_SECRET", ROBOT_SECRET),
        ("HOOK_SECRET", HOOK_SECRET),
    ]:
        monkeypatch.setenv(var, value)
    outlet: Outlet = load_outlet(procs, None, lambda line: None)  # what `serve` loads
    boss = director()
    boss_mail = f"{boss}@example.com"

    wf = Workflow(Store.open(db_url), procs)
    wf.deploy(now=at("2026-09-29T09:00"))
    snap = wf.start(
        "complaint",
        "wang.fang",
        {
            "kind": "complaint",
            "customer": "刘女士",
            "contact": "13800000000",
            "content": "停电三天无人处理",
            "subject": "抄表员张某",
        },
        now=RECEIVED,
    )
    (task,) = snap.tasks
    due: datetime = task.due_at  # type: ignore[assignment]
    assert due is not None and due > RECEIVED + timedelta(days=3)  # working days, not days

    def ours(**match: str) -> list[dict[str, Any]]:
        """The complaint's delivery rows (the shipped schedules start other processes too)."""
        rows = [r for r in wf.store.deliveries.list() if r["instance_id"] == snap.id]
        return [r for r in rows if all(r[k] == v for k, v in match.items())]

    def complaint_mails() -> list[EmailMessage]:
        return [m for m in mails_to(mailbox, boss_mail) if "[complaint]" in str(m["Subject"])]

    group.fault_for = snap.id
    dispatch(wf.store, wf.org, outlet, RECEIVED)  # the new task, to the clerks
    before = due - timedelta(minutes=1)
    tick(wf, before)  # the reminder, a day before the deadline: nothing escalated yet
    dispatch(wf.store, wf.org, outlet, before)
    assert {r["event"] for r in ours()} == {"task_assigned", "reminder"}
    assert complaint_mails() == [] and group.seen == []

    # the deadline passes: overdue, and escalation level 1 notifies service_director
    tick(wf, due)
    group.faults.append(FAULTS[fault])
    first = dispatch(wf.store, wf.org, outlet, due)
    assert first.dead == 0 and first.retried + first.held >= 1
    assert len(group.seen) == 1 and group.accepted_for(snap.id) == []
    # only the robot waits (a throttled robot holds the other processes' escalations too)
    pending = wf.store.deliveries.list(status="pending")
    assert {r["channel"] for r in pending} == {"service_group_robot"}
    # one group post per notice, not one per recipient
    assert [(r["event"], r["user_id"]) for r in pending if r["instance_id"] == snap.id] == [
        ("escalated", GROUP)
    ]

    # the dispatcher runs again once the back-off or DingTalk's 10-minute hold is over
    again = dispatch(wf.store, wf.org, outlet, due + timedelta(minutes=11))
    assert (again.sent, again.retried, again.held, again.dead) == (len(pending), 0, 0, 0)
    assert dispatch(wf.store, wf.org, outlet, due + timedelta(hours=1)).handled == 0

    # the group robot: every request signed right; the escalation accepted exactly once,
    # mentioning the director; it carries nothing else of the complaint's
    assert group.refused == [] and len(group.seen) == 2
    (message,) = group.accepted_for(snap.id)
    assert message["msgtype"] == "markdown"
    assert message["at"]["atUserIds"] == [DIRECTOR_DINGTALK]
    assert "%25" not in robot_sink.requests[-1].raw_query  # the signature encoded once
    robot_rows = ours(channel="service_group_robot")
    assert [(r["event"], r["user_id"]) for r in robot_rows] == [("escalated", GROUP)]

    # the director: exactly one e-mail of the complaint, the escalation, subject decoded
    (mail,) = complaint_mails()
    subject = str(mail["Subject"])
    assert "Escalation level 1" in subject or "第 1 级升级" in subject
    raw_subject = next(
        line for line in mail.as_string().splitlines() if line.startswith("Subject:")
    )
    assert subject.isascii() or "=?utf-8?" in raw_subject.lower()
    (row,) = ours(event="escalated", user_id=boss, channel="mail")
    assert mail["Message-ID"] == message_id(row["delivery_id"], "example.cn")

    # every webhook request verified, each delivery once, with the outbox's delivery ids
    assert receiver.failed_verification == 0 and len(hook_sink.requests) == len(receiver.verified)
    everything = wf.store.deliveries.list()
    hook_ids = {r["delivery_id"] for r in everything if r["channel"] == "erp"}
    ids = Counter(r["id"] for r in receiver.verified)
    assert set(ids) == hook_ids and set(ids.values()) == {1}
    escalated = [
        r
        for r in receiver.verified
        if r["type"] == "shenpi.escalated" and r["data"]["instance_id"] == snap.id
    ]
    assert boss in {r["data"]["recipient"] for r in escalated}

    # nothing doubled for anyone on any channel, nothing left pending or dead
    assert all(n == 1 for n in Counter(m.original_content for m in mailbox.messages).values())
    assert len(mailbox.messages) == len([r for r in everything if r["channel"] == "mail"])
    robot_sent = [r for r in everything if r["channel"] == "service_group_robot"]
    assert len(group.accepted) == len(robot_sent)
    assert statuses(wf.store) == Counter(sent=len(everything))
    keys = {(r["notice_id"], r["user_id"], r["channel"]) for r in everything}
    assert len(keys) == len(everything)
