"""The signer_added (加签) and sent_back (退回) notices: who, where, and the reason."""

from __future__ import annotations

from engine.org import Contacts, UserSpec
from notifiers.messages import build_message

EN = UserSpec(name="Fei", contacts=Contacts(email="fei@example.com"))
ZH = UserSpec(name="费娜", contacts=Contacts(email="fei@example.com", lang="zh"))
BASE = {"process": "purchase", "instance_id": "i-1", "task_id": "i-1-1", "state": "manager_review"}


def test_signer_added_says_where_whose_turn_and_why() -> None:
    data = BASE | {
        "by": "mia",
        "where": "before",
        "mode": "all",
        "their_turn": True,
        "comment": "finance should look first",
        "actions": ["approve", "reject"],
    }
    en = build_message("d-1", "signer_added", data, "fei", EN)
    assert "mia added you as a signer on manager_review" in en.text
    assert "to decide before them; every added person signs. It is your turn now" in en.text
    assert "mia wrote: finance should look first" in en.text
    assert "python run.py act i-1-1 approve --as fei" in en.text
    assert en.subject == "[purchase] You were added as a signer: manager_review"
    zh = build_message(
        "d-2", "signer_added", data | {"where": "after", "their_turn": False}, "fei", ZH
    )
    assert "mia 将您加签到 manager_review" in zh.text and "（已同意）之后审批" in zh.text
    assert "前序审批完成后轮到您" in zh.text and "留言：finance should look first" in zh.text
    assert zh.subject == "【purchase】加签：manager_review"


def test_sent_back_carries_the_reason() -> None:
    data = BASE | {
        "by": "fei",
        "comment": "attach the quote",
        "sent_back_from": "finance_review",
        "to_requester": False,
    }
    en = build_message("d-1", "sent_back", data, "mia", EN)
    assert "fei sent request i-1 back from finance_review to you: manager_review" in en.text
    assert en.text.splitlines()[0].endswith("Reason: attach the quote")
    home = data | {"to_requester": True, "state": "__resubmit__", "actions": ["resubmit"]}
    zh = build_message("d-2", "sent_back", home, "amy", ZH)
    assert "请修改后重新提交（或撤回）" in zh.text and "退回理由：attach the quote" in zh.text
    assert zh.subject == "【purchase】申请 i-1 被退回：__resubmit__"
