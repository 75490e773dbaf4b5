"""Registers over HTTP: the list, a page of rows, one row and its history (read scope)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from engine.records import AuditRecord, RegisterWrite
from tests.api.conftest import Api, run_server
from tests.registers import make_processes

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    gen = run_server(db_url, make_processes(tmp_path / "processes"))
    base, wf = next(gen)
    with httpx.Client(base_url=base, timeout=30) as client:
        yield Api(base, wf, client)
    for _ in gen:
        pass


def put(api: Api, key: str, **values: str) -> None:
    w = RegisterWrite("credit_limits", key, values, None, "register:x", None, "lin.feng", T0)
    audit = AuditRecord(T0, "lin.feng", "register_import", "register:x", None, None, None)
    api.wf.store.registers.import_rows([w], audit, T0)


def test_registers_rows_and_history(api: Api) -> None:
    put(api, "ACME", credit_limit="100", grade="A")
    put(api, "BETA", credit_limit="5")
    put(api, "ACME", credit_limit="200")
    (reg,) = api.get("/v1/registers", "liu.yang").json()
    assert (reg["register"], reg["rows"], reg["version"]) == ("credit_limits", 2, 3)
    first = api.get("/v1/registers/credit_limits", "liu.yang", params={"limit": 1})
    assert first.status_code == 200
    assert [r["customer"] for r in first.json()["items"]] == ["ACME"]
    assert first.json()["next_cursor"] == "ACME" and 'rel="next"' in first.headers["link"]
    rest = api.get("/v1/registers/credit_limits", "liu.yang", params={"cursor": "ACME"})
    assert [r["customer"] for r in rest.json()["items"]] == ["BETA"]
    row = api.get("/v1/registers/credit_limits/ACME", "liu.yang").json()
    assert (row["credit_limit"], row["grade"], row["version"]) == ("200", "A", 3)
    hist = api.get("/v1/registers/credit_limits/ACME/history", "liu.yang").json()
    assert [h["version"] for h in hist] == [1, 3]
    assert hist[1]["changes"] == {"credit_limit": {"old": "100", "new": "200"}}


def test_unknown_register_or_row_is_404_and_a_token_is_needed(api: Api) -> None:
    assert api.get("/v1/registers/nosuch", "liu.yang").status_code == 404
    assert api.get("/v1/registers/credit_limits/NOPE", "liu.yang").status_code == 404
    assert api.get("/v1/registers/credit_limits/NOPE/history", "liu.yang").status_code == 404
    assert api.get("/v1/registers").status_code == 401
