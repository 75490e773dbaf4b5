"""A small purchase request for the approval-view tests: review with send-back and
reject (reasons required), a resubmit by the clerks, then a 会签 of CFO and GM."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PURCHASE = """\
process: purchase
title: Purchase request
confidential_to: [cfo]
variables:
  item: {type: string}
  bank: {type: string, confidential: true}
start: {to: review, accept: [item, bank]}
states:
  review:
    title: Finance review
    task:
      role: finance
      actions:
        approve: {to: signoff}
        send_back: {to: revise, comment: required}
        reject: {to: rejected, comment: required}
  revise:
    title: Revise the request
    task:
      role: complaint_clerk
      four_eyes: false
      actions:
        resubmit: {to: review}
  signoff:
    title: CFO and GM sign
    task:
      roles: [cfo, general_manager]
      mode: all
      countersign: sign
      actions:
        sign: {to: approved}
        reject: {to: rejected, comment: required}
  approved: {final: true, outcome: approved}
  rejected: {final: true, outcome: rejected}
"""


def purchase_processes(folder: Path) -> Path:
    """A processes folder with the shipped org and ``purchase.yaml``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "processes" / "org.yaml", folder / "org.yaml")
    (folder / "purchase.yaml").write_text(PURCHASE, encoding="utf-8")
    return folder
