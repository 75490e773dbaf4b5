"""Console stays the default channel and conforms to the channel interface."""

from __future__ import annotations

from notifiers.channels import ConsoleChannel, Message, Recipient


def test_console_conforms_and_says_who_was_told_what() -> None:
    lines: list[str] = []
    result = ConsoleChannel(lines.append).send(
        Message(delivery_id="d", recipient=Recipient(user_id="zhao.lei"), text="New task #42")
    )
    assert result.ok
    assert lines == ["notify zhao.lei: New task #42"]
