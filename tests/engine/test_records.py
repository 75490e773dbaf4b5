"""Status enums stand in for the strings storage holds and other layers pass."""

from __future__ import annotations

import json
from enum import StrEnum

import pytest

from engine.records import InstanceStatus, NoticeEvent, TaskStatus, TimerKind, TimerStatus
from engine.sla import SlaPhase


@pytest.mark.parametrize(
    "enum", [InstanceStatus, TaskStatus, TimerStatus, TimerKind, NoticeEvent, SlaPhase]
)
def test_members_are_their_stored_strings(enum: type[StrEnum]) -> None:
    for member in enum:
        # a StrEnum hashes by name: with name == value a plain string finds the member
        assert member.name == member.value
        assert member == member.value and member.value in {member} and member in {member.value}
        assert f"{member}" == member.value and json.dumps(member) == json.dumps(member.value)
