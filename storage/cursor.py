"""Plain SQL on the DBAPI cursor of a pooled connection, for the statements of every step.

Through SQLAlchemy's Connection each statement costs tens of microseconds of Python (type
processors, result set-up, events); on the DBAPI cursor about one, and on SQLite the
write lock is held for every microsecond of it. The SQL text is still generated from
``storage.tables``, and driver errors are raised as SQLAlchemy's, so callers above see
the same exceptions either way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa


class RawSQL:
    """Statement text for one dialect, and a transaction and cursor to run it on."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        dialect = engine.dialect
        self.pg = dialect.name == "postgresql"
        self.dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        self._quote = dialect.identifier_preparer.quote

    # ------------------------------------------------------------------ SQL text

    def sql(self, text: str) -> str:
        """Write ``:name`` parameters; psycopg wants ``%(name)s`` (and literal % doubled)."""
        if not self.pg:
            return text
        return re.sub(r"(?<!:):(\w+)", r"%(\1)s", text.replace("%", "%%"))

    def names(self, cols: Iterable[str]) -> str:
        return ", ".join(self._quote(c) for c in cols)

    def sets(self, table: sa.Table, *cols: str) -> str:
        for c in cols:
            table.c[c]  # noqa: B018 - fail at start-up on a typo, not at the first step
        return ", ".join(f"{self._quote(c)} = :{c}" for c in cols)

    def insert(self, table: sa.Table, cols: Sequence[str], tail: str = "") -> str:
        values = ", ".join(f":{c}" for c in cols)
        return self.sql(f"INSERT INTO {table.name} ({self.names(cols)}) VALUES ({values}){tail}")

    # ------------------------------------------------------------------ execution

    @contextmanager
    def transaction(self, *, write: bool, begin: bool = True) -> Iterator[Any]:
        """A DBAPI cursor in a transaction on a pooled connection, committed on success.

        This skips SQLAlchemy's Connection (and its "begin" event), so the SQLite BEGIN
        flavour is issued here: IMMEDIATE for writes, so writers queue on busy_timeout
        instead of failing on a lock upgrade; DEFERRED for reads, which then never wait
        (WAL). Without ``begin`` (a read of one statement, which sees one snapshot on
        its own) SQLite runs it in autocommit. psycopg begins implicitly. A connection
        that cannot even roll back is invalidated rather than returned to the pool.
        """
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            try:
                if begin and not self.pg:
                    self.run(cur, "BEGIN IMMEDIATE" if write else "BEGIN DEFERRED", {})
                yield cur
                raw.commit()
            except BaseException:
                try:
                    raw.rollback()
                except Exception:
                    raw.invalidate()
                raise
            finally:
                cur.close()
        finally:
            raw.close()

    def run(self, cur: Any, sql: str, params: Mapping[str, Any]) -> Any:
        try:
            cur.execute(sql, params)
        except self.dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(sql, params, exc, self.dbapi_error) from exc
        return cur

    def many(self, cur: Any, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        try:
            if len(rows) == 1:
                cur.execute(sql, rows[0])
            else:
                cur.executemany(sql, rows)
        except self.dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(sql, rows, exc, self.dbapi_error) from exc
