"""The SELECT statements a call runs and their query plans, for the paging tests and
bench/bench_queries.py alike (both check that a listing walks its own index)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from storage.store import Store


def captured(store: Store, run: Callable[[], object]) -> list[tuple[str, Any]]:
    """Every SELECT that ``run`` sends through the store's engine, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def grab(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    sa.event.listen(store.engine, "before_cursor_execute", grab)
    try:
        run()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", grab)
    return seen


def plans(store: Store, statements: list[tuple[str, Any]]) -> list[str]:
    """One line per statement: SQLite's EXPLAIN QUERY PLAN or PostgreSQL's EXPLAIN."""
    pg = store.dialect == "postgresql"
    explain = "EXPLAIN" if pg else "EXPLAIN QUERY PLAN"
    out = []
    with store.engine.connect() as conn:
        for sql, params in statements:
            rows = conn.exec_driver_sql(f"{explain} {sql}", params).all()
            out.append(" | ".join((str(r[0]) if pg else str(r[-1])).strip() for r in rows))
    return out
