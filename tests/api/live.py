"""A real uvicorn server on a free loopback port, the app's database, and its contents.

Shared by the hooks, links and idempotency tests: the server runs in a thread of the test
process (so tests can move its clock), bound to a socket the test opened on port 0.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
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
        - {reassign: service_director, keep_original: false}  # the director alone
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


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file at the head revision, made once: each test copies it instead of
    running every migration again (that was most of a test's time)."""
    from storage.db import open_database

    path = tmp_path_factory.mktemp("template") / "shenpi.db"
    open_database(f"sqlite:///{path}").dispose()
    return path


def database(db_url: str, tmp_path: Path, template: Path) -> str:
    """``db_url``, or for SQLite a copy of the migrated template in ``tmp_path``."""
    if not db_url.startswith("sqlite"):
        return db_url
    copy = tmp_path / "copied.db"
    shutil.copyfile(template, copy)
    return f"sqlite:///{copy}"


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
    """Every row of every table, as sorted text: compare before and after a refusal.

    The tables of storage/tables.py (a test checks they are all the migrations make), so
    no reflection: reflecting the schema twice per test cost more than the test.
    """
    from storage.tables import metadata

    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            out[table.name] = sorted(repr(tuple(row)) for row in conn.execute(sa.select(table)))
    return out


# Most tests here run on SQLite only; those whose behaviour rests on the database's
# concurrency and uniqueness (replays, single use, concurrent duplicates) run on both.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
