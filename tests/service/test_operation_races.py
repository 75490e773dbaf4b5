"""Approval operations racing each other at the same instant, on each database.

Two threads, each with its own Workflow and connections, fire at one task or instance
behind a barrier, many rounds: exactly one wins each round, the other is refused (or
loses the optimistic lock) and changes nothing; the audit log holds one entry for the
winner only and its hash chain stays intact.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.errors import ShenpiError
from service.workflow import Workflow
from storage.store import Store
from tests.people import make_people

ROUNDS = 10
NOW = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)


@pytest.fixture
def procs(tmp_path: Path) -> Path:
    return make_people(tmp_path / "processes")


def race(
    url: str, procs: Path, rounds: list[str], a: Callable[[Workflow, str], object],
    b: Callable[[Workflow, str], object],
) -> list[dict[str, str]]:  # fmt: skip
    """Run ``a`` and ``b`` on each id of ``rounds`` at once; per round who won, who lost."""
    barrier = threading.Barrier(2)
    results: list[dict[str, str]] = [{} for _ in rounds]

    def worker(name: str, step: Callable[[Workflow, str], object]) -> None:
        wf = Workflow(Store.open(url), procs)
        wf.org  # load outside the timed race  # noqa: B018
        try:
            for i, ident in enumerate(rounds):
                barrier.wait(timeout=60)
                try:
                    step(wf, ident)
                    results[i][name] = "won"
                except ShenpiError as exc:
                    results[i][name] = f"refused: {exc}"
        finally:
            wf.store.close()

    threads = [threading.Thread(target=worker, args=(n, s)) for n, s in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()
    for r in results:
        assert sorted(r.values()).count("won") == 1, r
    return results


def setup(url: str, procs: Path, process: str) -> tuple[Workflow, list[tuple[str, str]]]:
    wf = Workflow(Store.open(url), procs)
    wf.deploy(now=NOW)
    started = [wf.start(process, "liu.yang", {"amount": "100"}, now=NOW) for _ in range(ROUNDS)]
    return wf, [(s.id, s.tasks[0].id) for s in started]


def test_withdraw_against_approve_at_the_same_instant(db_url: str, procs: Path) -> None:
    """On `strict` (withdraw only until the first approval) exactly one of them can win,
    whichever order they land in."""
    wf, ids = setup(db_url, procs, "strict")
    task_of = dict(ids)
    results = race(
        db_url,
        procs,
        [i for i, _ in ids],
        lambda w, i: w.withdraw(i, "liu.yang", "no longer needed", now=NOW),
        lambda w, i: w.act(task_of[i], "approve", "xu.ming", now=NOW),
    )
    for (instance_id, task_id), result in zip(ids, results, strict=True):
        snap = wf.store.load_snapshot(instance_id)
        actions = [e["action"] for e in wf.store.query_audit(instance_id=instance_id)]
        if result["a"] == "won":
            assert (snap.status, snap.tasks) == ("withdrawn", ())
            assert "approve" not in actions
            assert wf.store.get_task(task_id).decision == "withdrawn"
        else:
            assert (snap.status, snap.state) == ("active", "finance")
            assert "withdraw" not in actions
        assert actions.count("withdraw") + actions.count("approve") == 1
        assert actions.count("start") == 1
    assert wf.store.check_audit().problems == []
    wf.store.close()


def test_two_transfers_of_one_task(db_url: str, procs: Path) -> None:
    wf, ids = setup(db_url, procs, "purchase")
    results = race(
        db_url,
        procs,
        [t for _, t in ids],
        lambda w, t: w.transfer(t, "xu.ming", "lin.feng", "away", now=NOW),
        lambda w, t: w.transfer(t, "he.jing", "qian.hua", "busy", now=NOW),
    )
    for (instance_id, _task_id), result in zip(ids, results, strict=True):
        [task] = wf.store.load_snapshot(instance_id).tasks
        winner = "lin.feng" if result["a"] == "won" else "qian.hua"
        assert task.roles == (f"user:{winner}",)
        entries = [e for e in wf.store.query_audit(instance_id=instance_id)]
        transfers = [e for e in entries if e["action"] == "transfer"]
        assert [e["data"]["to"] for e in transfers] == [winner]
        loser = result["b"] if winner == "lin.feng" else result["a"]
        assert "changed by someone else" in loser or f"assigned to {winner}" in loser, loser
    assert wf.store.check_audit().problems == []
    wf.store.close()
