"""The notices of the approval operations (withdrawn, transferred, cc, remind_now): who
did it, why (the comment), and the commands that fit, in English and Chinese."""

from __future__ import annotations

from typing import Any

import pytest

from engine.org import Contacts, UserSpec
from notifiers.messages import build_message

BASE: dict[str, Any] = {
    "process": "purchase",
    "instance_id": "i-1",
    "state": "manager",
    "title": "部门经理审批",
    "actions": ["approve", "reject"],
    "by": "liu.yang",
    "comment": "预算已批 <b>急</b>",
}


def person(lang: str) -> UserSpec:
    return UserSpec(name="徐明", contacts=Contacts(email="xu.ming@example.com", lang=lang))


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize(
    ("event", "data", "acts", "words"),
    [
        ("withdrawn", {}, False, {"en": "withdrawn by liu.yang", "zh": "已由 liu.yang 撤回"}),
        ("transferred", {"task_id": "i-1-1"}, True, {"en": "transferred", "zh": "转交"}),
        ("cc", {"cc_by": "liu.yang"}, False, {"en": "liu.yang copied you", "zh": "抄送给您"}),
        ("remind_now", {"task_id": "i-1-1"}, True, {"en": "liu.yang asks", "zh": "催办"}),
    ],
)
def test_operation_notice_says_who_why_and_what_to_type(
    event: str, data: dict[str, Any], acts: bool, words: dict[str, str], lang: str
) -> None:
    msg = build_message("d1", event, BASE | data, "xu.ming", person(lang))
    assert words[lang] in msg.text
    assert "预算已批 <b>急</b>" in msg.text  # the comment, as written
    assert "<b>" not in msg.html  # and inert in HTML
    assert "python run.py show i-1 --as xu.ming" in msg.text
    assert ("python run.py act i-1-1 approve --as xu.ming" in msg.text) is acts
    assert msg.subject and "\n" not in msg.subject


def test_a_copy_made_by_the_definition_says_so() -> None:
    data = BASE | {"cc_by": "system", "comment": None}
    text = build_message("d1", "cc", data, "xu.ming", person("en")).text
    assert "the process copies you on request i-1" in text
