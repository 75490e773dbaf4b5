"""Rendering one notice per recipient and format: values are data, escaped per format."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.org import Contacts, UserSpec
from notifiers.messages import RenderError, build_message, markdown_escape
from notifiers.outbox import Outlet, dispatch
from service.workflow import Workflow
from storage.store import Store
from tests.timeproc import at

USER = UserSpec(name="赵磊", contacts=Contacts(email="zhao.lei@example.com"))
NASTY = "<script>alert(1)</script> [click](http://evil.example) **bold** <@all>"


def message(**data: object) -> object:
    base = {"process": "chase", "instance_id": "i-1", "task_id": "i-1-1", "state": "work"}
    return build_message("d-1", "task_assigned", base | data, "zhao.lei", USER)


def test_html_escapes_every_value() -> None:
    m = message(title=NASTY)
    assert m.html is not None
    assert "<script>" not in m.html and "&lt;script&gt;" in m.html
    assert NASTY in m.text  # the plain text is plain: nothing to escape


def test_markdown_and_card_escape_links_mentions_and_emphasis() -> None:
    m = message(comment=NASTY, by="wang.fang")
    assert m.markdown is not None and m.card is not None
    for body in (m.markdown, m.card.text):
        assert "[click](http" not in body and r"\[click\]\(http" in body
        assert "**bold**" not in body and "<@all>" not in body
    assert markdown_escape("a_b*c") == r"a\_b\*c"


def test_a_line_break_in_a_subject_is_refused() -> None:
    with pytest.raises(RenderError, match="line break"):
        message(title="Pay now\r\nBcc: everyone@example.com")


def test_the_deadline_is_shown_in_the_display_zone_and_the_comment_travels(
    db_url: str, procs: Path
) -> None:
    wf = Workflow(Store.open(db_url), procs)
    wf.deploy(now=at("2026-09-29T09:00"))
    snap = wf.start("chase", "wang.fang", {}, now=at("2026-09-30T10:00"))
    lines: list[str] = []
    dispatch(wf.store, wf.org, Outlet.console(lines.append), at("2026-09-30T10:01"))
    assert "due 2026-10-09 00:00 (Asia/Shanghai)" in lines[0]
    wf.act(snap.tasks[0].id, "done", "wang.fang", comment="客户已回电", now=at("2026-09-30T11:00"))
    dispatch(wf.store, wf.org, Outlet.console(lines.append), at("2026-09-30T11:01"))
    assert "wang.fang chose done and wrote: 客户已回电" in lines[-1]


def test_a_person_with_lang_zh_gets_chinese_text_and_subject() -> None:
    zh = UserSpec(name="陈军", contacts=Contacts(email="chen.jun@example.com", lang="zh"))
    data = {"process": "chase", "instance_id": "i-1", "task_id": "i-1-1", "state": "work"}
    m = build_message("d-2", "escalated", data | {"level": 1}, "chen.jun", zh)
    assert m.subject == "【chase】第 1 级升级：work"
    assert m.text.startswith("【chase】第 1 级升级，陈军：实例 i-1")
    en = build_message("d-3", "escalated", data | {"level": 1}, "zhao.lei", USER)
    assert en.subject == "[chase] Escalation level 1: work"
