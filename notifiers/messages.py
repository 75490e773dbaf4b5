"""One notice for one person on one kind of channel: the :class:`Message` a channel sends.

The text comes from the shipped ``{event}.txt.j2`` template; values are passed as data.
Every other format is derived from that text and escaped for its format as a whole, so a
value can never open a tag or a link: HTML through Jinja2's autoescape, robots' markdown
by backslash-escaping markdown characters, the card as a data structure the channel turns
into JSON itself. Subjects come from ``SUBJECTS`` with ``str.format`` on plain values
and are refused if they would contain a line break (header injection).
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from engine.org import UserSpec
from notifiers.channels.base import Card, Message, Recipient, has_line_break

TEMPLATES = Path(__file__).parent / "templates"
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")
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
}


class RenderError(ValueError):
    """A notice that cannot be turned into a safe message; retrying will not help."""


_TEXT = SandboxedEnvironment(
    loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined, autoescape=False
)
_HTML = Environment(autoescape=True)
_HTML_PAGE = _HTML.from_string(
    "<html><body><h3>{{ subject }}</h3>"
    "{% for line in lines %}<p>{{ line }}</p>{% endfor %}</body></html>"
)


# One subject line per event and language: plain text, values inserted with str.format.
SUBJECTS_ZH = {
    "task_assigned": "【{process}】新待办：{what}",
    "reminder": "【{process}】提醒：{what} 将于 {due_at} 到期",
    "overdue": "【{process}】已超期：{what}",
    "escalated": "【{process}】第 {level} 级升级：{what}",
    "completed": "【{process}】申请 {instance_id} 已办结：{outcome}",
    "schedule_failed": "【{process}】计划任务 {schedule} 未能启动",
}
SUBJECTS = {
    "task_assigned": "[{process}] New task: {what}",
    "reminder": "[{process}] Reminder: {what} is due {due_at}",
    "overdue": "[{process}] OVERDUE: {what}",
    "escalated": "[{process}] Escalation level {level}: {what}",
    "completed": "[{process}] Request {instance_id} finished: {outcome}",
    "schedule_failed": "[{process}] Scheduled run {schedule} did not start",
}


def render_text(event: str, data: dict[str, Any], lang: str = "en") -> str:
    """``{event}.zh.txt.j2`` for Chinese when there is one, else ``{event}.txt.j2``."""
    names = [f"{event}.{lang}.txt.j2", f"{event}.txt.j2"] if lang != "en" else [f"{event}.txt.j2"]
    try:
        template = _TEXT.select_template(names)
    except TemplateNotFound:
        template = _TEXT.from_string("[{{ process }}] {{ event }} on instance {{ instance_id }}.")
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


def markdown_escape(text: str) -> str:
    """Backslash-escape markdown syntax, so a value cannot become a link, a mention or a tag."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def render_html(subject: str, text: str) -> str:
    return _HTML_PAGE.render(subject=subject, lines=text.splitlines())


# Recipient's addresses are the org contacts' fields of the same names: a new kind of
# address added to both reaches the channels without a third list to keep in step.
_ADDRESSES = frozenset(f.name for f in fields(Recipient)) - {"user_id", "name"}


def recipient(user_id: str, user: UserSpec) -> Recipient:
    addresses = user.contacts.model_dump(include=_ADDRESSES)
    return Recipient(user_id=user_id, name=user.name, **addresses)


def build_message(
    delivery_id: str, event: str, data: dict[str, Any], user_id: str, user: UserSpec
) -> Message:
    """Every format at once: the channel picks the one it sends (they are cheap to make)."""
    values = data | {"recipient_name": user.name}
    lang = user.contacts.lang or "en"
    text = render_text(event, values, lang)
    subject = render_subject(event, values, lang)
    body = markdown_escape(text)
    return Message(
        delivery_id=delivery_id,
        recipient=recipient(user_id, user),
        subject=subject,
        text=text,
        html=render_html(subject, text),
        markdown=f"**{markdown_escape(subject)}**\n\n{body}",
        card=Card(title=subject, text=body),
        event=f"shenpi.{event}",
        data={"event": event, "recipient": user_id} | data,
    )


__all__ = ["RenderError", "build_message", "markdown_escape", "render_text"]
