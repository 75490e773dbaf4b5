"""Alembic environment.

Used both programmatically (``storage.db.migrate`` hands over an open connection inside
its own locked transaction) and from the command line for writing new revisions
(``alembic -x url=sqlite:///dev.db revision --autogenerate -m ...`` with a Config
pointing here), where it opens an engine of its own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from storage.db import open_engine
from storage.tables import metadata

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database with -x url=... or sqlalchemy.url")
    engine = open_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
