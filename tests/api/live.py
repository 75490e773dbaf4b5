"""A real uvicorn server on a free loopback port, the app's database, and its contents.

Shared by the hooks, links and idempotency tests: the server runs in a thread of the test
process (so tests can move its clock), bound to a socket the test opened on port 0.
"""

from __future__ import annotations

import base64
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvicorn

from tests.timeproc import ROOT

ERRAND = """\
process: errand
title: Errand
variables:
  note: {type: string}
  reason: {type: string}
start: {to: review, accept: [note]}
states:
  review:
    deadline:
      working_days: 1
      escalations:
        - {reassign: service_director}
    task:
      role: complaint_handler
      actions:
        approve: {to: done, accept: [reason]}
        reject: {to: done, comment: required}
  done: {final: true}
"""


def make_processes(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "org.yaml").write_text(
        (ROOT / "processes" / "org.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (folder / "errand.yaml").write_text(ERRAND, encoding="utf-8")
    return folder


class Clock:
    """The server's clock, moved by the test."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@contextmanager
def serve(make_app: Callable[[str], Any]) -> Iterator[str]:
    """Run ``make_app(base_url)`` under uvicorn on 127.0.0.1 (a free port, known before
    the app is made, so it can be the app's public URL); yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = make_app(f"http://127.0.0.1:{port}")
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def dump(engine: sa.Engine) -> dict[str, list[str]]:
    """Every row of every table, as sorted text: compare before and after a refusal."""
    meta = sa.MetaData()
    meta.reflect(engine)
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for name, table in sorted(meta.tables.items()):
            out[name] = sorted(repr(tuple(row)) for row in conn.execute(sa.select(table)))
    return out
