"""One notice for one person on one kind of channel: the :class:`Message` a channel sends.

The text comes from the shipped ``{event}.txt.j2`` template; values are passed as data.
Every other format is derived from that text and escaped for its format as a whole, so a
value can never open a tag or a link: HTML through Jinja2's autoescape, robots' markdown
by backslash-escaping markdown characters, the card as a data structure the channel turns
into JSON itself. Subjects come from ``SUBJECTS`` with ``str.format`` on plain values
and are refused if they would contain a line break (header injection).

Each message is made for its recipient: times in their zone (``contacts.tz``, else the
dispatcher's zone, else ``SHENPI_TZ``), their language, and the commands they would type
to look at the request and act on the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from engine.org import UserSpec
from notifiers.channels.base import (
    Button,
    Card,
    Message,
    Recipient,
    has_line_break,
    markdown_escape,
)

TEMPLATES = Path(__file__).parent / "templates"
# The user_id of a group robot's one delivery per notice (no real user id has asterisks).
GROUP = "*group*"
_DEFAULTS: dict[str, Any] = {
    "title": "",
    "state": "",
    "due_at": None,
    "level": "",
    "reassigned_to": None,
    "outcome": "",
    "task_id": None,
    "comment": None,
    "by": "",
    "action": "",
    "cc_by": "",
    "where": "",
    "mode": "",
    "their_turn": False,
    "sent_back_from": "",
    "to_requester": False,
}


class RenderError(ValueError):
    """A notice that cannot be turned into a safe message; retrying will not help."""


_TEXT = SandboxedEnvironment(
    loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined, autoescape=False
)
_HTML = Environment(autoescape=True)
_HTML_PAGE = _HTML.from_string(
    "<html><body><h3>{{ subject }}</h3>"
    "{% for line in lines %}<p>{{ line }}</p>{% endfor %}"
    '{% for title, url in links %}<p><a href="{{ url }}">{{ title }}</a></p>{% endfor %}'
    "</body></html>"
)
# An action link (action, url): one per action of the task, made for one recipient.
Link = tuple[str, str]


# One subject line per event and language: plain text, values inserted with str.format.
SUBJECTS_ZH = {
    "task_assigned": "【{process}】新待办：{what}",
    "reminder": "【{process}】提醒：{what} 将于 {due_at} 到期",
    "overdue": "【{process}】已超期：{what}",
    "escalated": "【{process}】第 {level} 级升级：{what}",
    "completed": "【{process}】申请 {instance_id} 已办结：{outcome}",
    "withdrawn": "【{process}】申请 {instance_id} 已撤回",
    "cancelled": "【{process}】申请 {instance_id} 已随上级流程取消",
    "schedule_failed": "【{process}】计划任务 {schedule} 未能启动",
    "transferred": "【{process}】转交给您：{what}",
    "cc": "【{process}】抄送：申请 {instance_id}（{what}）",
    "remind_now": "【{process}】催办：{what}",
    "signer_added": "【{process}】加签：{what}",
    "sent_back": "【{process}】申请 {instance_id} 被退回：{what}",
    "report_ready": "【报表】{title}（{period}）",
}
SUBJECTS = {
    "task_assigned": "[{process}] New task: {what}",
    "reminder": "[{process}] Reminder: {what} is due {due_at}",
    "overdue": "[{process}] OVERDUE: {what}",
    "escalated": "[{process}] Escalation level {level}: {what}",
    "completed": "[{process}] Request {instance_id} finished: {outcome}",
    "withdrawn": "[{process}] Request {instance_id} withdrawn",
    "cancelled": "[{process}] Request {instance_id} cancelled with its parent",
    "schedule_failed": "[{process}] Scheduled run {schedule} did not start",
    "transferred": "[{process}] Transferred to you: {what}",
    "cc": "[{process}] Copy for you: request {instance_id} ({what})",
    "remind_now": "[{process}] Please handle: {what}",
    "signer_added": "[{process}] You were added as a signer: {what}",
    "sent_back": "[{process}] Request {instance_id} sent back: {what}",
    "report_ready": "[report] {title} ({period})",
}


# An event without a template of its own still says who did it and why: a comment must
# never be lost on the way to the person it was written for.
_FALLBACK = (
    "[{{ process }}] {{ event }} on instance {{ instance_id }}"
    "{% if task_id %} (task {{ task_id }}){% endif %}"
    "{% if by %} by {{ by }}{% endif %}.{% if comment %} Comment: {{ comment }}{% endif %}"
)


def render_text(event: str, data: dict[str, Any], lang: str = "en") -> str:
    """``{event}.zh.txt.j2`` for Chinese when there is one, else ``{event}.txt.j2``."""
    names = [f"{event}.{lang}.txt.j2", f"{event}.txt.j2"] if lang != "en" else [f"{event}.txt.j2"]
    try:
        template = _TEXT.select_template(names)
    except TemplateNotFound:
        template = _TEXT.from_string(_FALLBACK)
    return template.render(**(_DEFAULTS | {"event": event} | data)).strip()


def render_subject(event: str, data: dict[str, Any], lang: str = "en") -> str:
    values = _DEFAULTS | data
    values["what"] = values.get("title") or values.get("state") or values.get("instance_id")
    table = SUBJECTS_ZH if lang == "zh" else SUBJECTS
    pattern = table.get(event) or SUBJECTS.get(event, "[{process}] {event}")

    class _Plain(dict[str, Any]):
        def __missing__(self, key: str) -> str:
            return ""

    subject = pattern.format_map(_Plain({k: str(v) for k, v in values.items()}, event=event))
    if has_line_break(subject):
        raise RenderError(f"subject of {event!r} would contain a line break: refused")
    return subject


def render_html(subject: str, text: str, links: Sequence[Link] = ()) -> str:
    return _HTML_PAGE.render(subject=subject, lines=text.splitlines(), links=links)


# Recipient's addresses are the org contacts' fields of the same names: a new kind of
# address added to both reaches the channels without a third list to keep in step.
_ADDRESSES = frozenset(f.name for f in fields(Recipient)) - {"user_id", "name"}


def zone_of(user: UserSpec, default: tzinfo | None = None) -> tzinfo:
    """The recipient's zone: ``contacts.tz``, else ``default``, else the display zone."""
    if user.contacts.tz:
        return ZoneInfo(user.contacts.tz)
    if default is not None:
        return default
    from service.display import display_tz  # the one place SHENPI_TZ is read

    return display_tz()


def _moment(value: Any) -> datetime | None:
    """A stored time (ISO 8601 text with an offset), or None for anything else."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def localized(data: dict[str, Any], zone: tzinfo) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data with times as ISO 8601 in ``zone``, for machines; data with times as
    ``2026-10-09 00:00 (Asia/Shanghai)``, for people)."""
    machine, human = dict(data), dict(data)
    name = getattr(zone, "key", None) or str(zone)
    for key, value in data.items():
        moment = _moment(value)
        if moment is not None:
            local = moment.astimezone(zone)
            machine[key] = local.isoformat()
            human[key] = f"{local:%Y-%m-%d %H:%M} ({name})"
    return machine, human


_COMMANDS = {
    "en": ("To act: {act}", "Details: {show}"),
    "zh": ("办理：{act}", "详情：{show}"),
}
# One line per action link (text formats); HTML shows the title as the link's text.
_LINK = {"en": "{action} in the browser: {url}", "zh": "网页办理（{action}）：{url}"}
_LINK_TITLE = {"en": "{action} (opens a page to confirm)", "zh": "{action}（打开页面确认）"}


def commands(data: dict[str, Any], user_id: str, lang: str) -> list[str]:
    """The CLI lines that let the recipient look and act, without knowing Shenpi.

    ``data["actions"]`` (when the notice names them) gives one command per action;
    otherwise ACTION stands for one of the task's actions, which ``show`` lists.
    """
    act_line, show_line = _COMMANDS.get(lang, _COMMANDS["en"])
    lines: list[str] = []
    task, instance = data.get("task_id"), data.get("instance_id")
    # no act line where the recipient may not act: a finished instance, or an escalation
    # that took the task from them (keep_original: false)
    if (
        task
        and data.get("event") not in ("completed", "schedule_failed")
        and not data.get("taken_from_you")
    ):
        actions = [str(a) for a in data.get("actions") or ()] or ["ACTION"]
        for action in actions:
            lines.append(act_line.format(act=f"python run.py act {task} {action} --as {user_id}"))
    if instance and instance != "test":  # `channels test` sends no real instance
        lines.append(show_line.format(show=f"python run.py show {instance} --as {user_id}"))
    return lines


def recipient(user_id: str, user: UserSpec) -> Recipient:
    addresses = user.contacts.model_dump(include=_ADDRESSES)
    return Recipient(user_id=user_id, name=user.name, **addresses)


def build_message(
    delivery_id: str,
    event: str,
    data: dict[str, Any],
    user_id: str,
    user: UserSpec,
    tz: tzinfo | None = None,
    links: Sequence[Link] = (),
) -> Message:
    """Every format at once: the channel picks the one it sends (they are cheap to make).

    ``tz`` is the zone for recipients without ``contacts.tz`` (default: SHENPI_TZ).
    ``links`` are this recipient's one-time action links (action, url), when the server has
    a public URL: a line each in the text, a link each in the HTML, a button each on the
    card (which the webhook channel sends as ``actions``).
    """
    lang = user.contacts.lang or "en"
    return _message(
        delivery_id,
        event,
        data,
        zone_of(user, tz),
        lang,
        user.name,
        user_id,
        recipient(user_id, user),
        links=links,
    )


_TO = {"en": "To: {names}", "zh": "收件人：{names}"}
_SEPARATOR = {"en": ", ", "zh": "、"}


def build_group_message(
    delivery_id: str,
    event: str,
    data: dict[str, Any],
    members: list[tuple[str, UserSpec]],
    tz: tzinfo | None = None,
) -> Message:
    """One post to a group robot for all of a notice's ``members`` (user id, user).

    Everyone with an id is mentioned; every name is listed. Times are in ``tz`` (else
    SHENPI_TZ), not one member's zone, and the language is the first member's: the group
    reads one message. Commands say ``--as USER``: each reader types their own id.
    """
    if not members:
        raise ValueError("a group message needs at least one recipient")
    lang = members[0][1].contacts.lang or "en"
    names = _SEPARATOR.get(lang, ", ").join(user.name for _, user in members)
    if tz is None:
        from service.display import display_tz  # the one place SHENPI_TZ is read

        tz = display_tz()
    people = tuple(recipient(uid, user) for uid, user in members)
    group = Recipient(user_id=GROUP, name=names)
    to_line = _TO.get(lang, _TO["en"]).format(names=names)
    message = _message(delivery_id, event, data, tz, lang, names, "USER", group, to_line)
    ids = [uid for uid, _ in members]
    return replace(message, mentions=people, data=dict(message.data) | {"recipients": ids})


def _message(
    delivery_id: str,
    event: str,
    data: dict[str, Any],
    zone: tzinfo,
    lang: str,
    name: str,
    act_as: str,
    to: Recipient,
    to_line: str | None = None,
    links: Sequence[Link] = (),
) -> Message:
    # a scheduled report (report_ready) carries its own HTML, already escaped by the
    # report's template: it is the e-mail's HTML part, and too big for the other formats
    report_html = data.get("report_html")
    data = {k: v for k, v in data.items() if k != "report_html"}
    data, shown = localized(data, zone)
    values = shown | {"recipient_name": name}
    text = render_text(event, values, lang)
    footer = commands(values | {"event": event}, act_as, lang)
    lines = [text, *([to_line] if to_line else []), *footer]
    text = "\n".join(lines)
    subject = render_subject(event, values, lang)
    body = markdown_escape(text)
    link_line = _LINK.get(lang, _LINK["en"])
    link_title = _LINK_TITLE.get(lang, _LINK_TITLE["en"])
    titled = [(link_title.format(action=a), url) for a, url in links]
    full_text = "\n".join([text, *(link_line.format(action=a, url=u) for a, u in links)])
    return Message(
        delivery_id=delivery_id,
        recipient=to,
        subject=subject,
        text=full_text,
        html=report_html if isinstance(report_html, str) else render_html(subject, text, titled),
        markdown=f"**{markdown_escape(subject)}**\n\n{body}",
        card=Card(title=subject, text=body, buttons=tuple(Button(a, u) for a, u in links)),
        event=f"shenpi.{event}",
        data={"event": event, "recipient": to.user_id}
        | data
        | ({"links": [{"action": a, "url": u} for a, u in links]} if links else {}),
    )


__all__ = [
    "GROUP",
    "RenderError",
    "build_group_message",
    "build_message",
    "markdown_escape",
    "render_text",
]
