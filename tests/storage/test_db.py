"""Opening databases: which URLs are accepted, and that only a creating open creates."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.errors import NoDatabase, WorkflowError
from storage.db import HEAD_REVISION, current_revision, normalize_url, open_database


@pytest.mark.parametrize(
    "url",
    ["foo:bar", "c:file.db", "mysql://u@h/db", "postgresql+psycopg2://u@h/db", "http://x", ""],
)
def test_unknown_schemes_are_refused(url: str) -> None:
    with pytest.raises(WorkflowError, match="unsupported database URL"):
        normalize_url(url)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///data/x.db", "sqlite:///data/x.db"),
        ("SQLITE:///x.db", "sqlite:///x.db"),
        ("sqlite://", "sqlite://"),
        ("./foo:bar.db", "sqlite:///./foo:bar.db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_known_spellings_are_normalized(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


def test_a_missing_sqlite_file_is_refused_without_creating_folders(tmp_path: Path) -> None:
    missing = tmp_path / "a" / "b" / "x.db"
    with pytest.raises(NoDatabase, match=f"no database at {missing}"):
        open_database(f"sqlite:///{missing}", create=False)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_database_is_refused_and_left_empty(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        Path(sa.make_url(db_url).database or "").touch()  # an existing, empty file
    with pytest.raises(NoDatabase, match="run 'python run.py deploy' first"):
        open_database(db_url, create=False)
    probe = sa.create_engine(db_url)
    try:
        with probe.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []
    finally:
        probe.dispose()
    engine = open_database(db_url, create=True)
    try:
        assert current_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()
    open_database(db_url, create=False).dispose()  # now it exists
