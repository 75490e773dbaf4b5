"""Delivery per recipient and channel, against a real SMTP server and a real webhook sink.

Every webhook request is checked by a receiver using the official ``standardwebhooks``
library; every e-mail goes through aiosmtpd. Time is the only fake: ``now`` is passed in.
"""

from __future__ import annotations

import base64
import random
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from standardwebhooks import Webhook, WebhookVerificationError

from engine.errors import DefinitionError
from engine.org import load_org
from engine.yamlsafe import load_file, load_text
from notifiers.channels.base import Delivery, Message
from notifiers.config import load_channels_text
from notifiers.outbox import (
    MAX_AGE,
    MAX_ATTEMPTS,
    MAX_HOLD,
    Dispatcher,
    Outlet,
    backoff,
    dispatch,
    expand,
)
from notifiers.routing import check_preferences
from service.timekeeper import tick
from service.workflow import Workflow
from storage.store import Store
from tests.notifiers.channels.sinks import HttpSink, Mailbox, Reply, Request
from tests.storage.test_store import pending_notices
from tests.timeproc import at

SECRET = "whsec_" + base64.b64encode(b"hook-secret-hook-secret-").decode()
T0 = at("2026-09-30T10:01")


class Receiver:
    """A webhook endpoint: verifies each request, then answers per recipient as told."""

    def __init__(self) -> None:
        self.verified: list[dict[str, Any]] = []
        self.failed_verification = 0
        # "user" or "user/instance" -> replies to give first
        self.answers: dict[str, list[Reply]] = {}

    def __call__(self, request: Request) -> Reply:
        headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
        try:
            body = Webhook(SECRET).verify(request.body, headers)
        except WebhookVerificationError:
            self.failed_verification += 1
            return Reply(401, {"error": "bad signature"})
        who = body["data"]["recipient"]
        self.verified.append({"id": headers["webhook-id"], "path": request.path} | body)
        queued = self.answers.get(f"{who}/{body['data']['instance_id']}") or self.answers.get(who)
        if queued:
            return queued.pop(0)
        return Reply(204, b"")

    def ids(self) -> Counter[str]:
        return Counter(r["id"] for r in self.verified)

    def per_recipient(self) -> Counter[str]:
        return Counter(r["data"]["recipient"] for r in self.verified)


@pytest.fixture
def receiver() -> Iterator[tuple[HttpSink, Receiver]]:
    with HttpSink() as sink:
        rec = Receiver()
        sink.default = rec
        yield sink, rec


def outlet(sink: HttpSink, smtp: Controller | None = None, extra: str = "") -> Outlet:
    mail = (
        f"  mail: {{type: email, host: 127.0.0.1, port: {smtp.port}, mode: plain, "
        "sender: 'Shenpi <shenpi@example.cn>', timeout: 5}\n"
        if smtp is not None
        else ""
    )
    text = (
        "channels:\n"
        f"{mail}"
        f"  service_hook: {{type: webhook, url: '{sink.url}/hook', secrets: ['${{HOOK}}'],"
        " timeout: 5}\n"
        f"{extra}"
    )
    return Outlet.of(load_channels_text(text, "channels.yaml", {"HOOK": SECRET}))


def limited(sink: HttpSink, per_minute: int) -> Outlet:
    """The webhook channel with a rate limit of its own."""
    text = (
        "channels:\n"
        f"  service_hook: {{type: webhook, url: '{sink.url}/hook', secrets: ['${{HOOK}}'],"
        f" rate_limit: {{messages: {per_minute}, per_seconds: 60}}}}\n"
    )
    return Outlet.of(load_channels_text(text, "channels.yaml", {"HOOK": SECRET}))


def started(db_url: str, procs: Path, n: int = 1) -> Workflow:
    wf = Workflow(Store.open(db_url), procs)
    wf.deploy(now=at("2026-09-29T09:00"))
    for _ in range(n):
        wf.start("chase", "wang.fang", {}, now=at("2026-09-30T10:00"))
    return wf


def statuses(store: Store) -> Counter[str]:
    return Counter(r["status"] for r in store.deliveries.list())


# ---------------------------------------------------------------------- end to end


def test_an_overdue_escalation_reaches_the_director_by_email_and_webhook(
    db_url: str,
    procs: Path,
    receiver: tuple[HttpSink, Receiver],
    smtp: Controller,
    mailbox: Mailbox,
) -> None:
    sink, rec = receiver
    out = outlet(sink, smtp, "route:\n  escalated: [mail, service_hook]\n  overdue: [mail]\n")
    wf = started(db_url, procs)
    dispatch(wf.store, wf.org, out, T0)  # the task_assigned notices
    assert tick(wf, at("2026-10-09T00:00")).fired == 3  # reminder, overdue, escalation 1
    report = dispatch(wf.store, wf.org, out, at("2026-10-09T00:00"))
    assert report.dead == report.retried == 0
    assert rec.failed_verification == 0 and len(sink.requests) == len(rec.verified)
    escalations = [r for r in rec.verified if r["type"] == "shenpi.escalated"]
    assert "chen.jun" in {r["data"]["recipient"] for r in escalations}
    mail_to = [(m.rcpt_tos[0], m.content.decode()) for m in mailbox.messages]
    director = [body for to, body in mail_to if to == "chen.jun@example.com"]
    assert len(director) == 1 and "Escalation level 1" in director[0]
    row = next(
        d
        for d in wf.store.deliveries.list()
        if d["user_id"] == "chen.jun" and d["channel"] == "mail"
    )
    assert f"shenpi.{row['delivery_id']}@example.cn" in director[0]  # Message-ID = delivery id
    # overdue is routed to e-mail only: no overdue request reached the webhook
    assert not [r for r in rec.verified if r["type"] == "shenpi.overdue"]
    assert statuses(wf.store) == Counter(sent=len(wf.store.deliveries.list()))


def test_500_then_200_resends_once_with_the_same_webhook_id(
    db_url: str, procs: Path, receiver: tuple[HttpSink, Receiver]
) -> None:
    sink, rec = receiver
    rec.answers["wang.fang"] = [Reply(500, {"error": "busy"})]
    wf = started(db_url, procs)
    out = outlet(sink)
    first = dispatch(wf.store, wf.org, out, T0, rng=random.Random(1))
    assert (first.sent, first.retried) == (1, 1)
    assert dispatch(wf.store, wf.org, out, T0 + timedelta(seconds=10)).handled == 0  # backoff
    assert dispatch(wf.store, wf.org, out, T0 + timedelta(minutes=2)).sent == 1
    assert sorted(rec.ids().values()) == [1, 2]
    assert rec.per_recipient() == Counter({"wang.fang": 2, "zhao.lei": 1})
    assert statuses(wf.store) == Counter(sent=2)


def test_a_recipient_added_mid_retry_is_sent_once_and_the_others_not_again(
    db_url: str, procs: Path, receiver: tuple[HttpSink, Receiver]
) -> None:
    sink, rec = receiver
    rec.answers["wang.fang"] = [Reply(503, {"error": "down"})]
    wf = started(db_url, procs)
    out = outlet(sink)
    dispatch(wf.store, wf.org, out, T0)
    org_file = procs / "org.yaml"
    text = org_file.read_text(encoding="utf-8").replace(
        "  liu.yang:", "  ning.bo: {name: 宁波, roles: [complaint_clerk]}\n  liu.yang:"
    )
    grown = load_org(load_text(text, "org.yaml"))
    later = T0 + timedelta(hours=1)
    dispatch(wf.store, grown, out, later)
    dispatch(wf.store, grown, out, later + timedelta(hours=1))
    assert rec.per_recipient() == Counter({"wang.fang": 2, "zhao.lei": 1, "ning.bo": 1})
    assert statuses(wf.store) == Counter(sent=3)


class DiesAfterSend:
    """Sends for real, then the process "dies" before the send can be marked."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name

    def send(self, message: Message) -> Delivery:
        self.inner.send(message)
        raise KeyboardInterrupt  # not an Exception: nothing in dispatch may swallow it


def test_a_dispatcher_killed_between_send_and_mark_resends_only_that_delivery(
    db_url: str, procs: Path, receiver: tuple[HttpSink, Receiver]
) -> None:
    sink, rec = receiver
    wf = started(db_url, procs)
    out = outlet(sink)
    dying = Outlet({"service_hook": DiesAfterSend(out.channels["service_hook"])}, out.router)
    with pytest.raises(KeyboardInterrupt):
        dispatch(wf.store, wf.org, dying, T0)
    assert dispatch(wf.store, wf.org, out, T0 + timedelta(minutes=1)).handled == 0  # leased
    assert dispatch(wf.store, wf.org, out, T0 + timedelta(minutes=6)).sent == 2
    assert sorted(rec.ids().values()) == [1, 2]  # the one sent before the "crash", same id
    assert statuses(wf.store) == Counter(sent=2)


def test_two_dispatchers_in_threads_produce_no_doubles(
    db_url: str, procs: Path, receiver: tuple[HttpSink, Receiver]
) -> None:
    sink, rec = receiver
    wf = started(db_url, procs, n=15)
    out = outlet(sink)
    stores = [Store.open(db_url), Store.open(db_url)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            d = Dispatcher(stores[i], wf.org, out)
            while d.run(T0, limit=4).handled:
                pass
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for s in stores:
        s.close()
    assert not errors
    assert len(rec.verified) == 30 and set(rec.ids().values()) == {1}
    assert statuses(wf.store) == Counter(sent=30)


def test_a_dead_delivery_does_not_block_the_rest(
    db_url: str, procs: Path, receiver: tuple[HttpSink, Receiver]
) -> None:
    sink, rec = receiver
    wf = started(db_url, procs, n=2)
    first = pending_notices(wf.store)[0]["instance_id"]
    rec.answers[f"wang.fang/{first}"] = [Reply(500, {"error": "busy"})] * MAX_ATTEMPTS
    rec.answers[f"zhao.lei/{first}"] = [Reply(400, {"error": "unknown receiver"})]
    out = outlet(sink)
    now = T0
    for _ in range(MAX_ATTEMPTS + 1):
        dispatch(wf.store, wf.org, out, now)
        now += timedelta(hours=2)
    rows = wf.store.deliveries.list()
    dead = [r for r in rows if r["status"] == "dead"]
    assert {r["user_id"] for r in dead} == {"zhao.lei", "wang.fang"}
    assert all("HTTP" in r["last_error"] or "400" in r["last_error"] for r in dead)
    wang = [r for r in dead if r["user_id"] == "wang.fang"]
    assert len(wang) == 1 and wang[0]["attempts"] == MAX_ATTEMPTS
    assert statuses(wf.store) == Counter(sent=2, dead=2)  # the other instance's two went out
    assert wf.store.deliveries.retry([wang[0]["id"]], now) == [wang[0]["id"]]
    assert dispatch(wf.store, wf.org, out, now).sent == 1


def test_rate_limit_and_retry_after_hold_back_without_using_attempts(
    db_url: str, procs: Path, receiver: tuple[HttpSink, Receiver]
) -> None:
    sink, rec = receiver
    out = limited(sink, 1)
    wf = started(db_url, procs)
    first = dispatch(wf.store, wf.org, out, T0)
    assert (first.sent, first.held) == (1, 1)
    held = next(r for r in wf.store.deliveries.list() if r["status"] == "pending")
    assert held["attempts"] == 0 and held["next_attempt_at"] == T0 + timedelta(seconds=60)
    assert dispatch(wf.store, wf.org, out, T0 + timedelta(seconds=30)).handled == 0
    who = held["user_id"]
    rec.answers[who] = [Reply(429, {"error": "slow down"}, headers={"Retry-After": "120"})]
    again = dispatch(wf.store, wf.org, out, T0 + timedelta(seconds=61))
    assert again.held == 1
    row = next(r for r in wf.store.deliveries.list() if r["status"] == "pending")
    assert row["attempts"] == 0
    assert row["next_attempt_at"] == T0 + timedelta(seconds=181)
    assert dispatch(wf.store, wf.org, out, T0 + timedelta(seconds=200)).sent == 1
    assert rec.per_recipient()[who] == 2 and statuses(wf.store) == Counter(sent=2)


def test_a_server_asking_to_wait_days_holds_the_channel_an_hour_at_most(
    db_url: str, procs: Path, receiver: tuple[HttpSink, Receiver]
) -> None:
    sink, rec = receiver
    out = limited(sink, 100)
    three_days = {"Retry-After": str(3 * 86400)}
    wf = started(db_url, procs)
    first_user = wf.org.holders("complaint_clerk")[0]  # expanded, so claimed, first
    rec.answers[first_user] = [Reply(429, {"error": "come back in 3 days"}, headers=three_days)]
    first = dispatch(wf.store, wf.org, out, T0)
    assert first.held == 2 and first.dead == 0
    assert len(sink.requests) == 1  # the second row was held by the channel, not sent
    rows = wf.store.deliveries.list()
    # the row asked for 3 days and got MAX_HOLD; the channel's limiter holds the other
    # row no longer either
    assert all(T0 < r["next_attempt_at"] <= T0 + MAX_HOLD for r in rows)
    assert all(r["attempts"] == 0 and r["status"] == "pending" for r in rows)
    assert dispatch(wf.store, wf.org, out, T0 + MAX_HOLD).sent == 2
    assert statuses(wf.store) == Counter(sent=2)


def test_a_server_that_always_throttles_makes_the_delivery_dead_after_max_age(
    db_url: str, procs: Path, receiver: tuple[HttpSink, Receiver]
) -> None:
    sink, rec = receiver
    throttled = Reply(429, {"error": "throttled"}, headers={"Retry-After": "0"})
    rec.answers["wang.fang"] = [throttled] * 1000
    wf = started(db_url, procs)
    out = outlet(sink)
    now, tries = T0, 0
    while now < T0 + MAX_AGE + timedelta(hours=2):
        tries += 1
        dispatch(wf.store, wf.org, out, now)
        now += timedelta(minutes=30)
    wang = [r for r in wf.store.deliveries.list() if r["user_id"] == "wang.fang"]
    assert [r["status"] for r in wang] == ["dead"]
    assert "429" in wang[0]["last_error"] and "within 24 h" in wang[0]["last_error"]
    assert wang[0]["attempts"] == 0  # only ever held, never counted
    # one request per dispatch until the age limit, not one per Retry-After: 0 in a loop
    asked = rec.per_recipient()["wang.fang"]
    assert asked == MAX_AGE / timedelta(minutes=30)
    assert asked < tries
    # an operator retries it once the receiver is fixed: a fresh age, sent once
    rec.answers["wang.fang"] = []
    assert wf.store.deliveries.retry([wang[0]["id"]], now) == [wang[0]["id"]]
    assert dispatch(wf.store, wf.org, out, now).sent == 1
    assert statuses(wf.store) == Counter(sent=2)


def test_a_delivery_held_back_is_marked_dead_when_its_age_runs_out_not_a_hold_later(
    db_url: str, procs: Path, receiver: tuple[HttpSink, Receiver]
) -> None:
    sink, rec = receiver
    rec.answers["wang.fang"] = [Reply(503, {"error": "down"}, headers={"Retry-After": "3600"})] * 99
    wf = started(db_url, procs)
    out = outlet(sink)
    dispatch(wf.store, wf.org, out, T0)  # queued at T0, held an hour
    dispatch(wf.store, wf.org, out, T0 + MAX_AGE - timedelta(minutes=10))
    row = next(r for r in wf.store.deliveries.list() if r["user_id"] == "wang.fang")
    assert row["next_attempt_at"] == T0 + MAX_AGE  # clamped, not an hour past it
    assert dispatch(wf.store, wf.org, out, T0 + MAX_AGE - timedelta(seconds=1)).handled == 0
    assert dispatch(wf.store, wf.org, out, T0 + MAX_AGE).dead == 1
    assert rec.per_recipient()["wang.fang"] == 2


# ---------------------------------------------------------------------- pieces


def test_expanding_a_notice_twice_queues_nothing_new(
    db_url: str, procs: Path, receiver: tuple[HttpSink, Receiver]
) -> None:
    sink, _ = receiver
    wf = started(db_url, procs)
    out = outlet(sink)
    (notice,) = wf.store.claim_notices(T0)
    assert expand(wf.store, wf.org, out, notice, T0) == 2
    assert expand(wf.store, wf.org, out, notice, T0) == 0
    assert len(wf.store.deliveries.list()) == 2


def test_contacts_decide_which_channels_reach_a_person(
    db_url: str, procs: Path, receiver: tuple[HttpSink, Receiver], smtp: Controller
) -> None:
    sink, _ = receiver
    org_file = procs / "org.yaml"
    text = org_file.read_text(encoding="utf-8").replace(
        "contacts: {email: zhao.lei@example.com}", "contacts: {wecom: zhaolei}"
    )
    org = load_org(load_text(text, "org.yaml"))
    wf = started(db_url, procs)
    out = outlet(sink, smtp)
    (notice,) = wf.store.claim_notices(T0)
    expand(wf.store, org, out, notice, T0)
    routes = sorted((r["user_id"], r["channel"]) for r in wf.store.deliveries.list())
    assert routes == [
        ("wang.fang", "mail"),
        ("wang.fang", "service_hook"),
        ("zhao.lei", "service_hook"),
    ]


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    waits = [backoff(n, rng) for n in range(1, 12)]
    assert timedelta(seconds=15) <= waits[0] <= timedelta(seconds=30)
    assert timedelta(seconds=60) <= waits[2] <= timedelta(seconds=120)
    assert all(w <= timedelta(hours=1) for w in waits)
    assert len({backoff(3, rng) for _ in range(5)}) > 1


# ---------------------------------------------------------------------- preferences


def with_contacts(procs: Path, user: str, contacts: str) -> None:
    """Give ``user`` these contacts in the processes folder's org.yaml."""
    org_file = procs / "org.yaml"
    old = f"contacts: {{email: {user}@example.com}}"
    text = org_file.read_text(encoding="utf-8")
    assert old in text
    org_file.write_text(text.replace(old, f"contacts: {contacts}"), encoding="utf-8")


def received(rec: Receiver, user: str) -> list[str]:
    return [r["type"] for r in rec.verified if r["data"]["recipient"] == user]


def test_a_reminder_in_quiet_hours_is_held_and_sent_once_they_end(
    db_url: str, procs: Path, receiver: tuple[HttpSink, Receiver]
) -> None:
    sink, rec = receiver
    with_contacts(procs, "wang.fang", "{email: wang.fang@example.com, quiet_hours: 22:00-08:00}")
    wf = started(db_url, procs)
    out = outlet(sink)
    assert dispatch(wf.store, wf.org, out, T0).sent == 2  # task_assigned, outside quiet hours
    assert tick(wf, at("2026-10-08T23:00")).fired == 1  # the reminder
    night = dispatch(wf.store, wf.org, out, at("2026-10-08T23:00"))
    assert (night.sent, night.held) == (1, 1)
    assert received(rec, "wang.fang") == ["shenpi.task_assigned"]
    assert received(rec, "zhao.lei") == ["shenpi.task_assigned", "shenpi.reminder"]
    held = next(r for r in wf.store.deliveries.list() if r["status"] == "pending")
    assert held["user_id"] == "wang.fang" and held["attempts"] == 0
    assert held["next_attempt_at"] == at("2026-10-09T08:00")
    assert dispatch(wf.store, wf.org, out, at("2026-10-09T07:59")).handled == 0
    morning = dispatch(wf.store, wf.org, out, at("2026-10-09T08:01"))
    assert (morning.sent, morning.held) == (1, 0)
    assert dispatch(wf.store, wf.org, out, at("2026-10-09T08:02")).handled == 0
    assert received(rec, "wang.fang") == ["shenpi.task_assigned", "shenpi.reminder"]
    assert statuses(wf.store) == Counter(sent=4)


def test_an_escalation_in_quiet_hours_is_sent_at_once(
    db_url: str, procs: Path, receiver: tuple[HttpSink, Receiver]
) -> None:
    sink, rec = receiver
    with_contacts(procs, "chen.jun", "{email: chen.jun@example.com, quiet_hours: 22:00-08:00}")
    with_contacts(procs, "zhou.min", "{email: zhou.min@example.com, quiet_hours: 22:00-08:00}")
    with_contacts(procs, "wang.fang", "{email: wang.fang@example.com, quiet_hours: 22:00-08:00}")
    wf = started(db_url, procs)
    out = outlet(sink)
    dispatch(wf.store, wf.org, out, T0)
    assert tick(wf, at("2026-10-09T00:00")).fired == 3  # reminder, overdue, escalation 1
    dispatch(wf.store, wf.org, out, at("2026-10-09T00:00"))
    assert received(rec, "chen.jun") == ["shenpi.escalated"]
    assert received(rec, "wang.fang") == ["shenpi.task_assigned", "shenpi.escalated"]
    pending = {(r["user_id"], r["next_attempt_at"]) for r in wf.store.deliveries.list()}
    assert ("wang.fang", at("2026-10-09T08:00")) in pending  # reminder and overdue wait


def test_a_channel_preference_excludes_a_routed_channel(
    db_url: str, procs: Path, receiver: tuple[HttpSink, Receiver], smtp: Controller
) -> None:
    sink, _ = receiver
    with_contacts(procs, "zhao.lei", "{email: zhao.lei@example.com, channels: [mail]}")
    wf = started(db_url, procs)
    out = outlet(sink, smtp)
    (notice,) = wf.store.claim_notices(T0)
    expand(wf.store, wf.org, out, notice, T0)
    routes = sorted((r["user_id"], r["channel"]) for r in wf.store.deliveries.list())
    assert routes == [("wang.fang", "mail"), ("wang.fang", "service_hook"), ("zhao.lei", "mail")]


def test_a_preferred_channel_channels_yaml_lacks_is_refused_with_its_place(procs: Path) -> None:
    with_contacts(procs, "zhao.lei", "{email: zhao.lei@example.com, channels: [mail, sms]}")
    doc = load_file(procs / "org.yaml")
    config = load_channels_text("channels:\n  mail: {type: console}\n", "channels.yaml", {})
    line = next(n for n, text in enumerate(doc.text.splitlines(), 1) if "  zhao.lei:" in text)
    with pytest.raises(
        DefinitionError, match=rf"org\.yaml:{line}:\d+: user 'zhao.lei' prefers channel 'sms'"
    ):
        check_preferences(load_org(doc), config, doc)
    check_preferences(load_org(doc), None, doc)  # console only: nothing to check
