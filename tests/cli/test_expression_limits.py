"""Expressions built to exhaust memory or CPU: refused in one line, quickly, changing nothing."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tests.memcap import memory_cap

from .helpers import PROCESSES, Shell

# The 450-byte file of the hardening issue: `validate` took 13.7 s and 3.97 GB on it.
FOLDED = """\
process: folded
title: Folded
variables:
  note: {type: string, title: "anything"}
start:
  roles: [complaint_clerk]
  to: review
states:
  review:
    title: "Review the note and approve it or not"
    task:
      role: complaint_clerk
      actions:
        approve:
          to: done
          when: "'a'*1000000000"
        reject:
          to: done
  done:
    title: "Finished"
    final: true
# (padded to the size of the file in the issue)
"""

REPEATED = """\
process: repeated
title: A guard that multiplies a list by an input
variables:
  copies: {type: integer}
start:
  roles: [complaint_clerk]
  to: review
states:
  review:
    task:
      role: complaint_clerk
      actions:
        approve:
          to: done
          require: [copies]
          when: "([0] * copies)|length > 0"
  done:
    final: true
"""


def test_validate_refuses_a_huge_constant_quickly_with_its_position(
    sqlite_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "folded.yaml"
    path.write_text(FOLDED, encoding="utf-8")
    assert len(FOLDED.encode()) == 450
    started = time.perf_counter()
    with memory_cap():
        res = Shell(sqlite_url).refused(["validate", str(path)], "over the limit of 100,000")
    assert time.perf_counter() - started < 5
    assert res.err.startswith(f"{path}:16:11: expression \"'a'*1000000000\" would build a text")


def test_an_action_whose_guard_would_build_a_huge_list_is_refused_and_changes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "procs"
    folder.mkdir()
    shutil.copy(PROCESSES / "org.yaml", folder / "org.yaml")
    (folder / "repeated.yaml").write_text(REPEATED, encoding="utf-8")
    sh = Shell(db_url, folder)
    sh.ok("deploy")
    inst = sh.js("start repeated --as wang.fang")
    task = inst["tasks"][0]["id"]
    before = (sh.js(f"show {inst['id']}"), sh.js(f"audit --instance {inst['id']}"))
    started = time.perf_counter()
    with memory_cap():
        res = sh.refused(
            f"act {task} approve --as zhao.lei --set copies=100000000", "over the limit of 100,000"
        )
    assert time.perf_counter() - started < 5
    assert "repeated.yaml:16:11: expression '([0] * copies)|length > 0': would build a list" in (
        res.err
    )
    assert (sh.js(f"show {inst['id']}"), sh.js(f"audit --instance {inst['id']}")) == before
    assert sh.js(f"act {task} approve --as zhao.lei --set copies=3")["state"] == "done"
