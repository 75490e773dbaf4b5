"""Shared fixtures: real databases, never mocks.

``db_url`` runs a test once on SQLite and once on PostgreSQL. PostgreSQL tests need the
server named by ``SHENPI_TEST_PG_URL`` (e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); each test gets a schema of its own
in that database, created before and dropped after, so tests cannot see each other's
rows and may run in any order.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_ENV = "SHENPI_TEST_PG_URL"
# the CLI keeps compiled definitions in a cache folder (service/defcache.py): the tests'
# go to a folder of their own, not to the user's ~/.cache
os.environ.setdefault("SHENPI_CACHE_DIR", tempfile.mkdtemp(prefix="shenpi-test-cache-"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shenpi.db'}"


def _pg_connect_args(url: str) -> dict[str, Any]:
    import sqlalchemy as sa

    parsed = sa.make_url(url)
    args: dict[str, Any] = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    return {k: v for k, v in args.items() if v is not None}


def _skip_or_fail(reason: str) -> None:
    """Skip with the reason; under SHENPI_REQUIRE_PG=1 (CI) a missing server is a failure."""
    if os.environ.get("SHENPI_REQUIRE_PG") == "1":
        pytest.fail(f"{reason} (SHENPI_REQUIRE_PG=1: PostgreSQL tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def _pg_admin() -> Iterator[tuple[Any, str]]:
    """An autocommit connection to the configured server (CREATE DATABASE needs one)."""
    url = os.environ.get(PG_ENV)
    if not url:
        _skip_or_fail(f"PostgreSQL tests need {PG_ENV}=postgresql+psycopg://user@host:port/db")
    from storage.db import normalize_url

    url = normalize_url(url)
    import psycopg

    try:
        conn = psycopg.connect(autocommit=True, connect_timeout=3, **_pg_connect_args(url))
    except psycopg.Error as exc:
        _skip_or_fail(f"PostgreSQL named by {PG_ENV} is unreachable: {exc}".strip())
    try:
        yield conn, url
    finally:
        conn.close()


@pytest.fixture
def pg_url(_pg_admin: tuple[Any, str]) -> Iterator[str]:
    """A fresh, empty schema on the configured server, dropped after the test.

    A schema (selected through ``search_path``) rather than a database because CREATE
    DATABASE costs ~0.2 s and this costs ~1 ms. The URL also names the schema as the
    ``application_name``, so teardown can end exactly this test's leftover sessions if
    one was leaked in a transaction and would block the DROP.
    """
    import sqlalchemy as sa

    conn, url = _pg_admin
    name = f"shenpi_t_{uuid.uuid4().hex[:16]}"
    conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield (
            sa.make_url(url)
            .update_query_dict({"options": f"-csearch_path={name}", "application_name": name})
            .render_as_string(hide_password=False)
        )
    finally:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test against SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def procs(tmp_path: Path) -> Path:
    """A processes folder with the shipped org and a small process with deadlines."""
    from tests.timeproc import make_processes

    return make_processes(tmp_path / "processes")


@pytest.fixture
def weekly(procs: Path) -> Path:
    """``procs`` plus a process started every Monday at 08:00 by a schedule."""
    from tests.timeproc import WEEKLY

    (procs / "weekly.yaml").write_text(WEEKLY, encoding="utf-8")
    return procs
