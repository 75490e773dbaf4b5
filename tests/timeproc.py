"""Small processes with deadlines and a weekly schedule, for the time tests."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

SH = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[1]


def at(text: str) -> datetime:
    """A Shanghai wall-clock time."""
    return datetime.fromisoformat(text).replace(tzinfo=SH)


PROCESS = """\
# yaml-language-server: $schema=../docs/schema/process.schema.json
process: chase
title: Chase
variables:
  note: {type: string}
start: {to: work, accept: [note]}
states:
  work:
    deadline:
      working_days: 1
      reminders: [{before: {hours: 2}}]
      escalations:
        - {notify: [service_director]}
        - {after: {working_days: 1}, reassign: service_director}
    task:
      role: complaint_clerk
      actions:
        done: {to: finished}
  finished: {final: true}
"""


WEEKLY = """\
process: weekly
title: Weekly
variables:
  note: {type: string}
start: {to: hold, accept: [note]}
schedules:
  - {name: monday, cron: "0 8 * * 1", as: chen.jun, set: {note: weekly}}
states:
  hold:
    task: {role: service_director, actions: {held: {to: over}}}
  over: {final: true}
"""


def make_processes(folder: Path, *, weekly: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "processes" / "org.yaml", folder / "org.yaml")
    (folder / "chase.yaml").write_text(PROCESS, encoding="utf-8")
    if weekly:
        (folder / "weekly.yaml").write_text(WEEKLY, encoding="utf-8")
    return folder
