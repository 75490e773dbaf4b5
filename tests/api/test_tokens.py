"""``run.py tokens``: shown once, stored hashed, listed without secrets, revoked for good."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.errors import InvalidData, NotAuthenticated
from service.tokens import authenticate, parse_expiry, parse_scopes
from service.workflow import Workflow
from tests.api.conftest import processes
from tests.cli.helpers import Shell


@pytest.fixture
def sh(db_url: str, tmp_path: Path) -> Shell:
    shell = Shell(db_url, processes(tmp_path / "processes"))
    shell.ok("deploy")
    return shell


def test_create_list_revoke(sh: Shell, db_url: str, tmp_path: Path) -> None:
    made = sh.ok("tokens create deng.ping --scopes read --expires 30d --name laptop")
    token = made.out.strip()
    assert token.startswith("shp_") and "only time it is shown" in made.err
    token_id, secret = token.split("_", 2)[1:]
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT * FROM api_tokens")).mappings().one()
    finally:
        engine.dispose()
    assert row["id"] == token_id and row["user_id"] == "deng.ping"
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(dict(row))

    listed = sh.js("tokens list")
    assert [(t["id"], t["user"], t["name"], t["scopes"], t["status"]) for t in listed] == [
        (token_id, "deng.ping", "laptop", ["read"], "active")
    ]
    assert secret not in sh.ok("tokens list").out

    wf = Workflow.open(db_url, tmp_path / "processes")
    try:
        caller, _ = authenticate(wf, token, datetime.now(UTC))
        assert (caller.user, caller.scopes) == ("deng.ping", frozenset({"read"}))
        assert "revoked" in sh.ok(f"tokens revoke {token_id}").out
        with pytest.raises(NotAuthenticated, match="the token is revoked"):
            authenticate(wf, token, datetime.now(UTC))
    finally:
        wf.store.close()
    assert sh.js("tokens list")[0]["status"] == "revoked"


def test_refusals_change_nothing(sh: Shell) -> None:
    sh.refused("tokens create nobody.here", "nobody.here")
    sh.refused("tokens create deng.ping --scopes root", "--scopes")
    sh.refused("tokens create deng.ping --expires 2000-01-01T00:00+08:00", "not in the future")
    sh.refused("tokens create deng.ping --expires soon", "--expires")
    sh.refused("tokens revoke 0123456789abcdef", "unknown token")
    assert sh.js("tokens list") == []


def test_scopes_and_expiry_parsing() -> None:
    assert parse_scopes("admin, read") == ("read", "admin")
    with pytest.raises(InvalidData, match="--scopes"):
        parse_scopes("")
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert parse_expiry("never", now) is None
    assert parse_expiry("12h", now) == datetime(2026, 11, 28, 0, tzinfo=UTC)
    assert parse_expiry("2026-12-01T00:00+00:00", now) == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(InvalidData, match="at least 1"):
        parse_expiry("0d", now)


def test_migration_0008_adds_and_removes_only_api_tokens(db_url: str) -> None:
    from alembic import command

    from storage.db import alembic_config, open_database

    engine = open_database(db_url)
    try:
        with engine.begin() as conn:
            head = set(sa.inspect(conn).get_table_names())
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0008")  # later revisions' tables out of the way
            before = set(sa.inspect(conn).get_table_names())
            assert "api_tokens" in before
            command.downgrade(config, "0007")
            assert set(sa.inspect(conn).get_table_names()) == before - {"api_tokens"}
            command.upgrade(config, "head")
            assert set(sa.inspect(conn).get_table_names()) == head
    finally:
        engine.dispose()
