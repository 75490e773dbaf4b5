"""Engines and schema migration.

Every CLI command opens the database, so the common case, a schema already at the head
revision, must cost one small query and must not import Alembic. Alembic is loaded only
when the database is new or behind.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from engine.errors import NoDatabase, ShenpiError, WorkflowError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# The newest revision in migrations/versions. Kept here so the startup check needs no
# Alembic; tests/storage checks that it matches the script directory's head.
HEAD_REVISION = "0012"

# Arbitrary constant key for pg_advisory_xact_lock: serializes concurrent first starts.
_PG_MIGRATION_LOCK = 0x5E4B_9100
# Execution option naming the SQLite BEGIN flavour of a connection's transactions.
SQLITE_BEGIN = "shenpi_sqlite_begin"


# The schemes Shenpi runs on, and the driver each is opened with (the one installed).
_SCHEMES = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
# What a URL scheme looks like (RFC 3986): "foo:bar" names scheme foo, not a file.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def normalize_url(url: str) -> str:
    """Accept the URL spellings people paste, and bare file paths for SQLite; refuse any
    other scheme (``foo:bar`` used to become a file named ``foo:bar``)."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in _SCHEMES:
        return f"{_SCHEMES[scheme.lower()]}://{rest}"
    if not sep and not _SCHEME.match(url) and url.strip():
        return f"sqlite:///{url}"
    raise WorkflowError(
        f"unsupported database URL {url!r}: use sqlite:///path/file.db (or a file path) or "
        "postgresql://user@host/db"
    )


def open_engine(url: str, *, create: bool = True) -> sa.Engine:
    """An engine configured for Shenpi's locking model (see ``_configure_sqlite``).

    Without ``create``, a missing SQLite file is refused before anything (a file, its
    folders) is made.
    """
    url = normalize_url(url)
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        memory = database in ("", ":memory:") or "mode=memory" in str(parsed.query)
        kwargs: dict[str, Any] = {}
        if memory:
            # One shared connection, or every checkout would see a new, empty database.
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        elif not create and not Path(database).expanduser().is_file():
            raise NoDatabase(database)
        else:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, **kwargs)
        _configure_sqlite(engine, wal=not memory)
        return engine
    return sa.create_engine(url, pool_pre_ping=False)


def open_database(url: str, *, create: bool = True) -> sa.Engine:
    """An engine on a database at the head revision.

    With ``create`` a new database is made (``deploy``, ``serve``); without it one that has
    no Shenpi schema yet is refused, so a read-only command leaves nothing behind. An older
    schema is upgraded either way: that changes no data anyone has.
    """
    engine = open_engine(url, create=create)
    try:
        migrate(engine, create=create)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _configure_sqlite(engine: sa.Engine, *, wal: bool) -> None:
    """WAL + FULL sync for durability, and ``BEGIN IMMEDIATE`` for every write transaction.

    pysqlite would otherwise start transactions lazily (DEFERRED) on the first write,
    so two writers that both read first deadlock on the upgrade and one gets
    "database is locked" at once instead of waiting for ``busy_timeout``. Taking the
    write lock up front makes writers queue. Reads may ask for a deferred BEGIN through
    the ``SQLITE_BEGIN`` execution option, so they never wait for a writer (WAL).
    This is SQLAlchemy's documented recipe for pysqlite transaction control.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        try:
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def current_revision(engine: sa.Engine) -> str | None:
    """The revision recorded in ``alembic_version``, or None for a database never migrated."""
    with engine.connect().execution_options(**{SQLITE_BEGIN: "DEFERRED"}) as conn:
        return _read_revision(conn)


def _read_revision(conn: sa.Connection) -> str | None:
    if conn.dialect.name == "postgresql":
        exists = conn.exec_driver_sql("SELECT to_regclass('alembic_version')").scalar()
    else:
        exists = conn.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).scalar()
    if not exists:
        return None
    rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    return rows[0] if len(rows) == 1 else None


def migrate(engine: sa.Engine, *, create: bool = True) -> bool:
    """Bring the schema to the head revision; True if anything was applied.

    Safe with several processes starting at once: the upgrade runs inside one
    transaction that holds the SQLite write lock (``BEGIN IMMEDIATE``) or a PostgreSQL
    advisory lock, and re-checks the revision once it holds it. Without ``create`` a
    database with no Shenpi schema is refused (``NoDatabase``), not filled in.
    """
    revision = current_revision(engine)
    if revision == HEAD_REVISION:
        return False
    if revision is None and not create:
        raise NoDatabase(engine.url.render_as_string(hide_password=True))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        if _read_revision(conn) == HEAD_REVISION:
            return False
        _upgrade(conn)
    return True


def _upgrade(conn: sa.Connection) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    config = alembic_config()
    current = _read_revision(conn)
    known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
    if current is not None and current not in known:
        raise ShenpiError(
            f"the database schema is at revision {current!r}, which this version of Shenpi "
            f"does not know (it knows up to {HEAD_REVISION!r}); it was probably upgraded by "
            "a newer release: run that release, or restore a backup made for this one"
        )
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def alembic_config() -> Any:
    """An Alembic ``Config`` built in code, so no alembic.ini has to ship or be found."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config
