"""Deliver outbox notices after commit: per recipient and channel, never lost, never doubled.

Notices are written in the same transaction as the step that caused them, so none is lost
and none is sent for a step that rolled back. Dispatch then works in two phases:

1. **Expand**: a claimed notice becomes one delivery row per (notice, recipient, channel)
   (a group robot: one per (notice, channel), user ``GROUP``), all in one transaction,
   before anything is sent. Routing needs org.yaml and
   channels.yaml, which the step's transaction (the engine's hot path) does not know, so
   it is done here. Each row's unique dedupe key means expanding again (a second
   dispatcher; a recipient added while others are still being retried) queues only what
   is missing.
2. **Send**: due rows are claimed with a lease, sent one at a time and marked right after
   each send, so a crash between a send and its mark repeats that one delivery (with the
   same delivery id) and nothing else.

Transient failures come back with exponential backoff and jitter; a server's own request
to wait (Retry-After, throttling codes) and the channel's rate limit hold a row back
without using up an attempt; permanent failures and the last attempt go to ``dead`` with
the error, and never hold up other rows.

Holding back must not become "never": a server asking for days, or one that throttles
every attempt, would otherwise keep a row pending forever without using an attempt. So
each hold is capped at ``MAX_HOLD`` and every delivery has ``MAX_AGE`` from when it was
queued (or queued again by ``notices retry``): past it, the row goes to ``dead`` with its
last error, where an operator sees it, instead of being sent a day late.
"""

from __future__ import annotations

import hashlib
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

from engine.errors import NotFound
from engine.org import Org, UserSpec
from engine.records import TaskRecord, TaskStatus
from notifiers.channels.base import Channel, Delivery, Message
from notifiers.channels.console import ConsoleChannel
from notifiers.channels.ratelimit import RateLimiter
from notifiers.config import ChannelsConfig
from notifiers.messages import (
    GROUP,
    RenderError,
    build_group_message,
    build_message,
    render_text,
)
from notifiers.routing import Router

log = logging.getLogger("shenpi.notify")

MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
LEASE = timedelta(minutes=5)
# The longest a server's request to wait (Retry-After, a throttling code) holds a row.
MAX_HOLD = BACKOFF_CAP
MIN_HOLD = timedelta(seconds=1)  # "Retry-After: 0" in a loop must not become a busy loop
# A delivery not sent this long after it was queued goes dead instead (see the docstring).
MAX_AGE = timedelta(hours=24)
# Sent even during a person's quiet hours: every escalation level notifies as "escalated".
URGENT_EVENTS = frozenset({"escalated"})
# Notices about a task that is still to be decided: these may carry action links.
LINK_EVENTS = frozenset({"task_assigned", "reminder", "overdue", "escalated"})


class LinkMaker(Protocol):
    """Makes one-time action links (api/linktokens.ActionLinks, when a public URL is set)."""

    def make_link(
        self, task: TaskRecord, user: str, action: str, now: datetime, link_id: str | None = None
    ) -> str: ...


def link_id(delivery_id: str, action: str) -> str:
    """The id of a delivery's link for ``action``: the same when the delivery is rendered
    again for a retry, so a message sent twice still carries one single-use link."""
    return hashlib.sha256(f"{delivery_id}\0{action}".encode()).hexdigest()[:24]


def render(event: str, data: dict[str, Any]) -> str:
    """The plain text of a notice (kept for callers that only want the text)."""
    return render_text(event, data)


def recipients(org: Org, targets: list[str], now: datetime | None = None) -> list[str]:
    """``role:x`` -> the users acting for that role now; ``user:y`` -> y (or y's delegate).

    With ``now``, a delegation limited to dates (org.yaml) counts only on those days."""
    out: list[str] = []
    for target in targets:
        kind, _, ident = target.partition(":")
        if kind == "role":
            out.extend(org.holders(ident, now=now))
        elif kind == "user" and ident in org.users:
            out.append(org.users[ident].delegate_on(now) or ident)
    return list(dict.fromkeys(out))


def backoff(attempts: int, rng: random.Random) -> timedelta:
    """30 s, 60 s, 120 s ... capped at an hour, each scaled by a random 50-100 % so that
    rows that failed together do not all come back in the same second."""
    step = min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)
    return step * (0.5 + rng.random() / 2)


def capped(d: Delivery) -> Delivery:
    """``d`` with its ``retry_after`` kept between MIN_HOLD and MAX_HOLD."""
    if d.retry_after is None:
        return d
    low, high = MIN_HOLD.total_seconds(), MAX_HOLD.total_seconds()
    return replace(d, retry_after=min(max(d.retry_after, low), high))


def expires(row: dict[str, Any]) -> datetime:
    """When a delivery stops being worth sending: MAX_AGE after it was (re)queued."""
    return row["created_at"] + MAX_AGE


@dataclass
class Outlet:
    """The configured channels by name, their routing and their rate limiters."""

    channels: dict[str, Channel]
    router: Router
    limiters: dict[str, RateLimiter] = field(default_factory=dict)
    # One-time action links in per-person messages; None (no public URL): none, and the
    # messages read exactly as they always did.
    links: LinkMaker | None = None

    @classmethod
    def console(cls, write: Callable[[str], None] | None = None) -> Outlet:
        """What Shenpi uses without channels.yaml: everything to the console."""
        return cls(
            {"console": ConsoleChannel(write)}, Router({"console": "console"}, preferences=False)
        )

    @classmethod
    def of(
        cls, config: ChannelsConfig | None, write: Callable[[str], None] | None = None
    ) -> Outlet:
        if config is None:
            return cls.console(write)
        return cls(config.build(), Router.of(config), config.limiters())


@dataclass
class Report:
    expanded: int = 0
    sent: int = 0
    retried: int = 0
    held: int = 0
    dead: int = 0
    lost_claims: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.held + self.dead


def dedupe_key(notice_id: int, user_id: str, channel: str) -> str:
    return f"{notice_id}/{user_id}/{channel}"


def expand(store: Any, org: Org, outlet: Outlet, notice: dict[str, Any], now: datetime) -> int:
    """Queue the deliveries of one notice that are not queued yet; returns how many.

    A group robot gets one row per notice (user ``GROUP``); who it mentions is worked out
    when it is sent (:func:`group_members`), so a recipient added while it is still
    pending is included, and one added after it was sent does not make a second post.
    """
    rows = []
    groups: dict[str, None] = {}
    for user_id in recipients(org, list(notice["recipients"]), now):
        contacts = org.users[user_id].contacts
        names = outlet.router.channels_for(notice["event"], contacts)
        if not names:
            log.warning("notice %s: no channel reaches %s", notice["id"], user_id)
        for name in names:
            if outlet.router.is_group(name):
                groups[name] = None
            else:
                rows.append(_row(notice["id"], user_id, name))
    rows.extend(_row(notice["id"], GROUP, name) for name in groups)
    again = notice.get("status") == "sent"
    return int(store.deliveries.expand(notice["id"], rows, now, reexpand=again))


def _row(notice_id: int, user_id: str, channel: str) -> dict[str, Any]:
    return {
        "delivery_id": uuid.uuid4().hex,
        "dedupe_key": dedupe_key(notice_id, user_id, channel),
        "notice_id": notice_id,
        "user_id": user_id,
        "channel": channel,
    }


def group_members(org: Org, router: Router, row: dict[str, Any]) -> list[tuple[str, UserSpec]]:
    """The notice's recipients (as of now) that ``row``'s group robot reaches."""
    members = []
    for user_id in recipients(org, list(row["recipients"])):
        user = org.users[user_id]
        if row["channel"] in router.channels_for(row["event"], user.contacts):
            members.append((user_id, user))
    return members


def _data(row: dict[str, Any]) -> dict[str, Any]:
    """The notice's values; times stay ISO 8601 here and are moved to each recipient's
    zone by :func:`build_message`."""
    data = dict(row.get("data") or {})
    return data | {
        "instance_id": row["instance_id"],
        "task_id": row.get("task_id"),
        "process": data.get("process") or "",
    }


class Dispatcher:
    """Sends what is due through an :class:`Outlet`; safe to run in several processes."""

    def __init__(
        self,
        store: Any,
        org: Org,
        outlet: Outlet,
        rng: random.Random | None = None,
        lease: timedelta = LEASE,
        tz: tzinfo | None = None,
    ) -> None:
        self.store = store
        self.org = org
        self.outlet = outlet
        self.rng = rng or random.Random()
        self.lease = lease
        self.tz = tz  # of quiet hours without a personal tz; None: the display zone

    def _zone(self) -> tzinfo:
        if self.tz is None:
            from service.display import display_tz  # the one place SHENPI_TZ is read

            self.tz = display_tz()
        return self.tz

    def run(self, now: datetime, limit: int = 100) -> Report:
        report = Report()
        for notice in self.store.claim_notices(now, limit=limit, lease=self.lease):
            report.expanded += expand(self.store, self.org, self.outlet, notice, now)
        for notice in self.store.deliveries.open_notices(limit=limit):
            report.expanded += expand(self.store, self.org, self.outlet, notice, now)
        for row in self.store.deliveries.claim(now, limit=limit, lease=self.lease):
            self._one(row, now, report)
        return report

    def _one(self, row: dict[str, Any], now: datetime, report: Report) -> None:
        channel = self.outlet.channels.get(row["channel"])
        group = row["user_id"] == GROUP
        user = None if group else self.org.users.get(row["user_id"])
        if channel is None or (user is None and not group):
            what = "channel" if channel is None else "user"
            ident = row["channel"] if channel is None else row["user_id"]
            self._finish(row, "dead", now, report, f"{what} {ident!r} is no longer configured")
            return
        if now >= expires(row):
            last = row.get("last_error") or "none (it was only ever held back)"
            age = f"not sent within {MAX_AGE / timedelta(hours=1):g} h of being queued"
            self._finish(row, "dead", now, report, f"{age}; last error: {last}", counted=False)
            return
        # a group post is not one person's: nobody's quiet hours hold it (see the docs)
        if user is not None and row["event"] not in URGENT_EVENTS:
            quiet_end = user.contacts.quiet_until(now, self._zone())
            if quiet_end is not None:  # held like a rate limit: no attempt used
                self._hold(row, now, quiet_end, report)
                return
        limiter = self.outlet.limiters.get(row["channel"])
        if limiter is not None:
            not_before = limiter.acquire(now)
            if not_before is not None:
                self._hold(row, now, not_before, report)
                return
        try:
            message = self._message(row, user, now)
        except (RenderError, ValueError, KeyError, TypeError) as exc:
            self._finish(row, "dead", now, report, f"cannot render: {exc}")
            return
        try:
            delivery = channel.send(message)
        except Exception as exc:  # a channel must not raise; if one does, retry it
            delivery = Delivery("transient", f"{type(exc).__name__}: {exc}"[:300])
        delivery = capped(delivery)
        if limiter is not None:
            limiter.observe(delivery, now)
        self._outcome(row, delivery, now, report)

    def _message(self, row: dict[str, Any], user: UserSpec | None, now: datetime) -> Message:
        """The message of a delivery; ValueError for a group nobody is routed to any more."""
        if user is not None:
            links = self._links(row, now)
            return build_message(
                row["delivery_id"],
                row["event"],
                _data(row),
                row["user_id"],
                user,
                self._zone(),
                links,
            )
        members = group_members(self.org, self.outlet.router, row)
        if not members:
            raise ValueError("none of the notice's recipients is routed to this robot any more")
        return build_group_message(
            row["delivery_id"], row["event"], _data(row), members, self._zone()
        )

    def _links(self, row: dict[str, Any], now: datetime) -> list[tuple[str, str]]:
        """One action link per action for a person who may act on the task now.

        Not for group robots (anyone in the group could follow a link made for one of
        them), not for a task no longer open, not for someone only told about it.
        """
        maker, task_id = self.outlet.links, row.get("task_id")
        actions = (row.get("data") or {}).get("actions") or ()
        if maker is None or not task_id or not actions or row["event"] not in LINK_EVENTS:
            return []
        try:
            task = self.store.get_task(task_id)
        except NotFound:
            return []
        if task.status != TaskStatus.open:
            return []
        targets = getattr(task, "pending_recipients", None)
        if targets is None:  # before tasks named people: roles only
            targets = tuple(f"role:{r}" for r in task.pending_roles)
        if row["user_id"] not in recipients(self.org, list(targets)):
            return []
        user = row["user_id"]
        return [
            (a, maker.make_link(task, user, a, now, link_id(row["delivery_id"], a)))
            for a in actions
            if a in task.actions
        ]

    def _outcome(self, row: dict[str, Any], d: Delivery, now: datetime, report: Report) -> None:
        where = f"{row['channel']}: {d.detail}" if d.detail else row["channel"]
        if d.status == "ok":
            self._finish(row, "sent", now, report)
        elif d.status == "permanent":
            self._finish(row, "dead", now, report, where)
        elif d.retry_after is not None:
            self._hold(row, now, now + timedelta(seconds=d.retry_after), report, where)
        elif int(row["attempts"]) >= MAX_ATTEMPTS:
            self._finish(row, "dead", now, report, f"{where} (after {row['attempts']} attempts)")
        else:
            report.retried += 1
            again = min(now + backoff(int(row["attempts"]), self.rng), expires(row))
            self.store.deliveries.finish(row, "pending", now, where, next_attempt_at=again)

    def _hold(
        self,
        row: dict[str, Any],
        now: datetime,
        until: datetime,
        report: Report,
        error: str | None = None,
    ) -> None:
        """Put a row back until ``until`` without using an attempt; never past its age
        limit, so a row held to the end is marked dead on time, not a hold later."""
        report.held += 1
        until = min(until, expires(row))
        self.store.deliveries.finish(
            row, "pending", now, error, next_attempt_at=until, counted=False
        )

    def _finish(
        self,
        row: dict[str, Any],
        status: str,
        now: datetime,
        report: Report,
        error: str = "",
        counted: bool = True,
    ) -> None:
        if not self.store.deliveries.finish(row, status, now, error or None, counted=counted):
            report.lost_claims += 1
            log.warning("delivery %s: claim lost before it was marked", row["delivery_id"])
            return
        if status == "sent":
            report.sent += 1
        else:
            report.dead += 1
            log.error("delivery %s to %s dead: %s", row["delivery_id"], row["user_id"], error)


def dispatch(
    store: Any,
    org: Org,
    outlet: Outlet,
    now: datetime,
    limit: int = 100,
    rng: random.Random | None = None,
) -> Report:
    """Expand pending notices and send the deliveries due at ``now``."""
    return Dispatcher(store, org, outlet, rng).run(now, limit)
