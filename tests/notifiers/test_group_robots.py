"""Group robots post once per notice, mentioning every recipient; e-mail stays personal.

An escalation to five people used to make five posts in the same group chat. Real
loopback servers: aiosmtpd for mail, an HTTP sink standing in for DingTalk and WeCom.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from engine.org import Org, load_org
from engine.yamlsafe import load_text
from notifiers.config import load_channels_text
from notifiers.messages import GROUP
from notifiers.outbox import Outlet, dispatch, expand
from storage import tables
from storage.store import Store
from tests.notifiers.channels.sinks import HttpSink, Mailbox, Reply
from tests.timeproc import at

T0 = at("2026-09-30T10:01")
PEOPLE = {"li.na": ("李娜", "ln01"), "chen.jun": ("陈军", "cj02"), "he.ping": ("何平", "hp03")}


def org_of(people: dict[str, tuple[str, str]], quiet: str = "") -> Org:
    lines = ["org: test", "roles:", "  boss: {title: boss}", "users:"]
    for uid, (name, ding) in people.items():
        extra = f", quiet_hours: '{quiet}'" if quiet else ""
        lines.append(
            f"  {uid}: {{name: {name}, roles: [boss], contacts: "
            f"{{email: {uid}@example.com, dingtalk: {ding}, wecom: w.{ding}{extra}}}}}"
        )
    return load_org(load_text("\n".join(lines) + "\n", "org.yaml"))


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as running:
        yield running


def outlet(sink: HttpSink, smtp: Controller, wecom: bool = True) -> Outlet:
    text = (
        "channels:\n"
        f"  mail: {{type: email, host: 127.0.0.1, port: {smtp.port}, mode: plain,"
        " sender: 'Shenpi <shenpi@example.cn>', timeout: 5}\n"
        f"  group: {{type: dingtalk, token: '${{T}}', url: '{sink.url}/ding', timeout: 5}}\n"
    )
    if wecom:
        text += f"  wx: {{type: wecom, key: '${{T}}', url: '{sink.url}/wecom', timeout: 5}}\n"
    return Outlet.of(load_channels_text(text, "channels.yaml", {"T": "tok"}))


def notify(store: Store, event: str, recipients: list[str]) -> int:
    row = {
        "created_at": T0,
        "event": event,
        "recipients": recipients,
        "instance_id": None,
        "task_id": None,
        "data": {"process": "complaint", "level": 1, "title": "停电三天"},
        "status": "pending",
        "attempts": 0,
    }
    with store.engine.begin() as conn:
        return int(conn.execute(sa.insert(tables.outbox).values(**row)).inserted_primary_key[0])


def posts(sink: HttpSink, path: str) -> list[Any]:
    return [r.json() for r in sink.requests if r.path.startswith(path)]


def test_an_escalation_to_three_posts_once_per_group_and_mails_each(
    db_url: str, sink: HttpSink, smtp: Controller, mailbox: Mailbox
) -> None:
    store, org, out = Store.open(db_url), org_of(PEOPLE), outlet(sink, smtp)
    notify(store, "escalated", ["role:boss"])
    report = dispatch(store, org, out, T0)
    assert report.sent == 5  # three e-mails, one DingTalk post, one WeCom post
    (ding,) = posts(sink, "/ding")
    assert sorted(ding["at"]["atUserIds"]) == ["cj02", "hp03", "ln01"]
    assert ding["at"]["isAtAll"] is False
    for name in ("李娜", "陈军", "何平"):
        assert name in ding["markdown"]["text"]
    (wecom,) = posts(sink, "/wecom")
    content = wecom["markdown"]["content"]
    assert all(f"<@w.{d}>" in content for _, d in PEOPLE.values())
    assert sorted(rcpt for m in mailbox.messages for rcpt in m.rcpt_tos) == sorted(
        f"{uid}@example.com" for uid in PEOPLE
    )
    rows = store.deliveries.list()
    assert sorted((r["user_id"], r["channel"]) for r in rows if r["channel"] != "mail") == [
        (GROUP, "group"),
        (GROUP, "wx"),
    ]
    # expanding again (a second dispatcher, a later tick) queues nothing and sends nothing
    (notice,) = [{"id": rows[0]["notice_id"], "status": "sent", "event": "escalated",
                  "recipients": ["role:boss"]}]  # fmt: skip
    assert expand(store, org, out, notice, T0) == 0
    assert dispatch(store, org, out, at("2026-09-30T12:00")).handled == 0
    assert len(posts(sink, "/ding")) == 1 and len(mailbox.messages) == 3
    store.close()


def test_a_robot_500_resends_the_one_group_post_only(
    db_url: str, sink: HttpSink, smtp: Controller, mailbox: Mailbox
) -> None:
    store, org, out = Store.open(db_url), org_of(PEOPLE), outlet(sink, smtp, wecom=False)
    sink.replies.append(Reply(500, {"error": "busy"}))  # the first request: DingTalk's post
    notify(store, "escalated", ["role:boss"])
    first = dispatch(store, org, out, T0)
    assert (first.sent, first.retried) == (3, 1)
    again = dispatch(store, org, out, at("2026-09-30T11:01"))
    assert (again.sent, again.retried, again.dead) == (1, 0, 0)
    assert dispatch(store, org, out, at("2026-09-30T13:00")).handled == 0
    dings = posts(sink, "/ding")
    assert len(dings) == 2 and dings[0] == dings[1]  # the failed post, then the same once more
    assert len(mailbox.messages) == 3
    store.close()


def sent_notice(store: Store) -> dict[str, Any]:
    """The notice as a later dispatch re-expands it (already expanded once)."""
    (row, *_) = store.deliveries.list()
    return {"id": row["notice_id"], "status": "sent", "event": row["event"],
            "recipients": ["role:boss"]}  # fmt: skip


def test_a_recipient_added_while_the_group_post_is_pending_is_mentioned_in_it(
    db_url: str, sink: HttpSink, smtp: Controller, mailbox: Mailbox
) -> None:
    two = {k: v for k, v in PEOPLE.items() if k != "he.ping"}
    store, out = Store.open(db_url), outlet(sink, smtp, wecom=False)
    sink.replies.append(Reply(500, {"error": "busy"}))
    notify(store, "escalated", ["role:boss"])
    assert dispatch(store, org_of(two), out, T0).retried == 1
    # he.ping joins the role before the retry: his own mail, and a place in the one post
    again = dispatch(store, org_of(PEOPLE), out, at("2026-09-30T11:01"))
    assert (again.expanded, again.sent, again.retried) == (1, 2, 0)
    first, second = posts(sink, "/ding")
    assert sorted(first["at"]["atUserIds"]) == ["cj02", "ln01"]
    assert sorted(second["at"]["atUserIds"]) == ["cj02", "hp03", "ln01"]
    assert len(mailbox.messages) == 3
    store.close()


def test_a_recipient_added_after_the_group_post_was_sent_gets_no_second_post(
    db_url: str, sink: HttpSink, smtp: Controller, mailbox: Mailbox
) -> None:
    two = {k: v for k, v in PEOPLE.items() if k != "he.ping"}
    store, out = Store.open(db_url), outlet(sink, smtp, wecom=False)
    notify(store, "escalated", ["role:boss"])
    assert dispatch(store, org_of(two), out, T0).sent == 3
    assert expand(store, org_of(PEOPLE), out, sent_notice(store), T0) == 1  # his mail only
    assert dispatch(store, org_of(PEOPLE), out, at("2026-09-30T10:02")).sent == 1
    assert len(posts(sink, "/ding")) == 1 and len(mailbox.messages) == 3
    store.close()


def test_quiet_hours_hold_personal_mail_but_not_the_group_post(
    db_url: str, sink: HttpSink, smtp: Controller, mailbox: Mailbox
) -> None:
    store, out = Store.open(db_url), outlet(sink, smtp, wecom=False)
    org = org_of(PEOPLE, quiet="00:00-23:59")
    notify(store, "task_assigned", ["role:boss"])
    report = dispatch(store, org, out, T0)
    assert (report.sent, report.held) == (1, 3)
    (ding,) = posts(sink, "/ding")
    assert len(ding["at"]["atUserIds"]) == 3 and mailbox.messages == []
    store.close()
