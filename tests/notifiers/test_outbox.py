"""Outbox delivery: each notice claimed by one worker, retried on failure, sent once."""

from __future__ import annotations

import threading
from pathlib import Path

from notifiers.outbox import Outlet, dispatch, render
from service.workflow import Workflow
from storage.store import Store
from tests.timeproc import at


def started(db_url: str, procs: Path, n: int = 1) -> Workflow:
    wf = Workflow(Store.open(db_url), procs)
    wf.deploy(now=at("2026-09-29T09:00"))
    for _ in range(n):
        wf.start("chase", "wang.fang", {}, now=at("2026-09-30T10:00"))
    return wf


def test_each_notice_is_sent_once_to_the_role_holders(db_url: str, procs: Path) -> None:
    wf = started(db_url, procs)
    lines: list[str] = []
    outlet = Outlet.console(lines.append)
    assert dispatch(wf.store, wf.org, outlet, at("2026-09-30T10:01")).sent == 2
    assert sorted(line.split(":")[0] for line in lines) == ["notify wang.fang", "notify zhao.lei"]
    assert "New task" in lines[0]
    assert dispatch(wf.store, wf.org, outlet, at("2026-09-30T10:02")).handled == 0
    assert len(lines) == 2


def test_a_claim_left_by_a_dead_worker_is_taken_over_after_the_lease(
    db_url: str, procs: Path
) -> None:
    wf = started(db_url, procs)
    assert len(wf.store.claim_notices(at("2026-09-30T10:01"))) == 1  # then the worker dies
    assert wf.store.claim_notices(at("2026-09-30T10:03")) == []
    assert len(wf.store.claim_notices(at("2026-09-30T10:07"))) == 1


def test_two_workers_never_claim_the_same_notice(db_url: str, procs: Path) -> None:
    wf = started(db_url, procs, n=40)
    stores = [Store.open(db_url), Store.open(db_url)]
    claimed: list[list[int]] = [[], []]
    barrier = threading.Barrier(2)

    def worker(i: int) -> None:
        barrier.wait()
        while batch := stores[i].claim_notices(at("2026-09-30T10:01"), limit=3):
            claimed[i].extend(n["id"] for n in batch)

    threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not set(claimed[0]) & set(claimed[1])
    assert len(claimed[0]) + len(claimed[1]) == 40
    for s in stores:
        s.close()
    wf.store.close()


def test_user_text_is_data_never_a_template() -> None:
    text = render("task_assigned", {"process": "p", "recipient_name": "{{ 7*7 }}", "task_id": "t",
                                    "instance_id": "i"})  # fmt: skip
    assert "{{ 7*7 }}" in text and "49" not in text
