"""A real uvicorn server on a free loopback port, on SQLite and PostgreSQL, driven by httpx.

Each test gets a fresh database with the shipped org and a small ``spend`` process
(four-eyes, a confidential value, a comment required to reject), deployed.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.app import ApiConfig, create_app
from api.server import bind, server
from service.tokens import issue_token
from service.workflow import Workflow
from storage.groupcommit import pays_off

ROOT = Path(__file__).resolve().parents[2]

SPEND = """\
process: spend
title: Spend request
four_eyes: true
confidential_to: [cfo]
variables:
  amount: {type: money}
  reason: {type: string}
  salary: {type: money, confidential: true}
  note: {type: string}
start: {to: review, accept: [amount, reason, salary]}
states:
  review:
    title: Finance review
    task:
      role: finance
      actions:
        approve: {to: done, accept: [note]}
        reject: {to: rejected, comment: required}
  done: {final: true}
  rejected: {final: true}
"""

# tables a step writes, which a refusal must leave alone (the audit log is compared by
# length; api_tokens only notes when a token was last used)
TABLES = ("instances", "tasks", "task_roles", "timers", "outbox", "deliveries")


@dataclass
class Api:
    """The running server, the Workflow behind it, and helpers to call it."""

    base: str
    wf: Workflow
    http: httpx.Client
    _tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    def token(self, user: str, scopes: str = "read,act") -> str:
        key = (user, scopes)
        if key not in self._tokens:
            issued = issue_token(
                self.wf, user, tuple(scopes.split(",")), None, None, datetime.now(UTC)
            )
            self._tokens[key] = issued.token
        return self._tokens[key]

    def auth(self, user: str, scopes: str = "read,act") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, scopes)}"}

    def get(self, path: str, user: str | None = None, **kw: Any) -> httpx.Response:
        headers = self.auth(user) if user else {}
        return self.http.get(path, headers=headers | kw.pop("headers", {}), **kw)

    def post(self, path: str, user: str | None = None, **kw: Any) -> httpx.Response:
        headers = self.auth(user) if user else {}
        return self.http.post(path, headers=headers | kw.pop("headers", {}), **kw)

    def start(self, user: str = "liu.yang", amount: str = "1200.50", **more: Any) -> dict[str, Any]:
        variables = {"amount": amount, "reason": "laptop", "salary": "30000.00"} | more
        res = self.post("/v1/instances", user, json={"process": "spend", "variables": variables})
        assert res.status_code == 201, res.text
        return dict(res.json())

    def fingerprint(self) -> dict[str, Any]:
        """Every row of the tables a step writes, and the audit log's length."""
        with self.wf.store.engine.connect() as conn:
            rows = {
                t: sorted(map(repr, conn.execute(sa.text(f"SELECT * FROM {t}")).all()))
                for t in TABLES
            }
            rows["audit"] = conn.execute(sa.text("SELECT count(*) FROM audit_log")).scalar()
        return rows


def processes(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "processes" / "org.yaml", folder / "org.yaml")
    (folder / "spend.yaml").write_text(SPEND, encoding="utf-8")
    return folder


@pytest.fixture
def api_procs(tmp_path: Path) -> Path:
    return processes(tmp_path / "processes")


def run_server(
    db_url: str, procs: Path, config: ApiConfig | None = None
) -> Iterator[tuple[str, Workflow]]:
    """uvicorn serving create_app on 127.0.0.1:<free port> in a thread, until closed."""
    # as serve opens it: group commit where it pays (SQLite)
    wf = Workflow.open(db_url, procs, create=True, group_commit=pays_off(db_url))
    wf.deploy([], by="system")
    app = create_app(wf, config or ApiConfig())
    sock = bind("127.0.0.1", 0)
    host, port = sock.getsockname()[:2]
    srv = server(app, host, port)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}", wf
    finally:
        srv.should_exit = True
        thread.join(timeout=15)
        sock.close()
        wf.store.close()


@pytest.fixture
def make_api(db_url: str, api_procs: Path) -> Iterator[Callable[..., Api]]:
    """``make_api(config)``: a server on this test's database (at most one per test)."""
    servers: list[Iterator[tuple[str, Workflow]]] = []
    clients: list[httpx.Client] = []

    def make(config: ApiConfig | None = None) -> Api:
        gen = run_server(db_url, api_procs, config)
        servers.append(gen)
        base, wf = next(gen)
        client = httpx.Client(base_url=base, timeout=30)
        clients.append(client)
        return Api(base, wf, client)

    yield make
    for client in clients:
        client.close()
    for gen in servers:
        for _ in gen:
            pass


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


def expired(days: int = 1) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)
