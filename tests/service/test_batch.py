"""service.batch.act_many, the batch every face (CLI, HTTP) calls, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ActionNotAllowed, InvalidData, WorkflowError
from service.batch import MAX_BATCH, act_many, all_ok
from service.workflow import Workflow
from storage.store import Store
from tests.cli.approvals import purchase_processes
from tests.timeproc import at


@pytest.fixture
def wf(db_url: str, tmp_path: Path) -> Workflow:
    flow = Workflow(Store.open(db_url), purchase_processes(tmp_path / "processes"))
    flow.deploy(now=at("2026-09-30T09:00"))
    return flow


def test_each_task_is_its_own_step_and_a_refusal_is_recorded_as_denied(wf: Workflow) -> None:
    a = wf.start("purchase", "wang.fang", {"item": "a"}, at("2026-09-30T10:00")).tasks[0].id
    b = wf.start("purchase", "wang.fang", {"item": "b"}, at("2026-09-30T10:00")).tasks[0].id
    wf.act(a, "approve", "deng.ping", now=at("2026-09-30T10:30"))
    sign = f"{a.rpartition('-')[0]}-2"
    # deng.ping holds finance, not cfo: the signoff task refuses, b goes through
    results = act_many(wf, [sign, b], "approve", "deng.ping", now=at("2026-09-30T11:00"))
    assert not all_ok(results)
    assert [r.ok for r in results] == [False, True]
    assert results[0].error is not None and "not an action of this task" in results[0].error
    # the refusal itself travels with the row (the HTTP face classifies it), not in its JSON
    assert isinstance(results[0].refusal, ActionNotAllowed) and results[1].refusal is None
    assert "refusal" not in results[0].to_json()
    assert (results[1].state, results[1].status, results[1].open_tasks) == (
        "signoff",
        "active",
        (f"{b.rpartition('-')[0]}-2",),
    )
    denied = wf.store.query_audit(instance_id=a.rpartition("-")[0], action="denied")
    assert [(e["task_id"], e["actor"]) for e in denied] == [(sign, "deng.ping")]
    assert results[1].to_json()["open_tasks"] == [f"{b.rpartition('-')[0]}-2"]


def test_a_batch_that_cannot_be_meant_is_refused_before_any_step(wf: Workflow) -> None:
    a = wf.start("purchase", "wang.fang", {"item": "a"}, at("2026-09-30T10:00")).tasks[0].id
    with pytest.raises(InvalidData, match="name at least one task"):
        act_many(wf, [], "approve", "deng.ping")
    with pytest.raises(InvalidData, match=f"at most {MAX_BATCH} tasks"):
        act_many(wf, [f"x-{i}" for i in range(MAX_BATCH + 1)], "approve", "deng.ping")
    with pytest.raises(WorkflowError, match="unknown user 'ghost'"):
        act_many(wf, [a], "approve", "ghost")
    with pytest.raises(InvalidData, match="^action: "):
        act_many(wf, [a], "appr\x00ove", "deng.ping")
    assert [e["action"] for e in wf.store.query_audit(instance_id=a.rpartition("-")[0])] == [
        "start"
    ]
