"""32 approvers press the button at once: one decision, 31 answers saying who won."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.api.conftest import Api

CLIENTS = 32


def test_32_concurrent_decisions_give_one_200_and_31_409(api: Api) -> None:
    task_id = api.start()["tasks"][0]["id"]
    users = ["deng.ping", "feng.xue"]
    headers = [api.auth(users[i % 2]) for i in range(CLIENTS)]
    gate = threading.Barrier(CLIENTS)

    def decide(i: int) -> httpx.Response:
        with httpx.Client(base_url=api.base, timeout=60) as client:
            gate.wait()
            return client.post(
                f"/v1/tasks/{task_id}/decision",
                headers=headers[i],
                json={"action": "approve", "comment": f"client {i}"},
            )

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(decide, range(CLIENTS)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [409] * (CLIENTS - 1), [r.text for r in answers if r.status_code != 409]
    winner = next(r for r in answers if r.status_code == 200).json()
    decided_by = winner["history"][-1]["actor"]
    for res in answers:
        if res.status_code == 409:
            problem = res.json()
            assert problem["type"].endswith("/task-already-decided"), problem
            assert problem["decided_by"] == decided_by
    approvals = api.wf.store.query_audit(instance_id=winner["id"], action="approve")
    assert len(approvals) == 1
    assert api.wf.store.check_audit().problems == []
