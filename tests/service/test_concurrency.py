"""Two OS processes act on the same task at the same moment, many rounds, on each database.

Exactly one wins each round; the loser gets a clear refusal; the audit log never holds two
entries for one task's decision.
"""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import ShenpiError
from service.workflow import Workflow
from storage.store import Store

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
ROUNDS = 25
NOW = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)


def _worker(url: str, user: str, task_ids: list[str], barrier, results) -> None:  # noqa: ANN001
    wf = Workflow(Store.open(url), PROCESSES)
    wf.org  # load outside the timed race  # noqa: B018
    for task_id in task_ids:
        barrier.wait(timeout=60)
        try:
            wf.act(task_id, "accept", user, {"first_contact": f"called by {user}"}, now=NOW)
            results.put((task_id, user, "won"))
        except ShenpiError as exc:
            results.put((task_id, user, f"refused: {exc}"))
    wf.store.close()


def test_two_processes_race_on_the_same_task(db_url: str) -> None:
    setup = Workflow(Store.open(db_url), PROCESSES)
    setup.deploy(now=NOW)
    task_ids = []
    for i in range(ROUNDS):
        snap = setup.start(
            "complaint",
            "wang.fang",
            {"kind": "complaint", "customer": f"c{i}", "contact": "1", "content": "x"},
            now=NOW,
        )
        task_ids.append(snap.tasks[0].id)
    setup.store.close()

    ctx = mp.get_context("fork")  # children open their own connections after the fork
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(db_url, user, task_ids, barrier, results))
        for user in ("wang.fang", "zhao.lei")
    ]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * ROUNDS)]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0

    by_task: dict[str, list[str]] = {}
    for task_id, _user, result in outcomes:
        by_task.setdefault(task_id, []).append(result)
    for task_id, results_ in by_task.items():
        assert sum(r == "won" for r in results_) == 1, (task_id, results_)
        loser = next(r for r in results_ if r != "won")
        assert "changed by someone else" in loser or "already done" in loser, loser

    check = Store.open(db_url)
    for task_id in task_ids:
        entries = [e for e in check.query_audit(action="accept") if e["task_id"] == task_id]
        assert len(entries) == 1, entries
    assert check.check_audit().problems == []
    check.close()
