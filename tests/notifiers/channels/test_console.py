"""Console stays the default channel and conforms to the channel interface."""

from __future__ import annotations

from notifiers.channels import ConsoleChannel, Message, Recipient
from notifiers.outbox import ConsoleChannel as OutboxConsole


def test_console_conforms_and_says_who_was_told_what() -> None:
    lines: list[str] = []
    result = ConsoleChannel(lines.append).send(
        Message(delivery_id="d", recipient=Recipient(user_id="zhao.lei"), text="New task #42")
    )
    assert result.ok
    assert lines == ["notify zhao.lei: New task #42"]


def test_the_outbox_console_takes_both_the_old_call_and_a_message() -> None:
    lines: list[str] = []
    console = OutboxConsole(lines.append)
    console.send("wang.fang", {"email": "w@example.cn", "phone": None}, "Due tomorrow")
    result = console.send(Message(delivery_id="d", recipient=Recipient(user_id="li.na"), text="Hi"))
    assert result.ok
    assert lines == ["notify wang.fang: Due tomorrow", "notify li.na: Hi"]
