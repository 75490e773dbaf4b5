"""The on-disk cache of compiled definitions: never stale, never trusted blindly."""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from engine.calendar import WorkingCalendar, default_calendar
from engine.catalog import compile_stored, org_catalog, org_catalog_files
from engine.process import CompiledProcess
from service import defcache
from service.defcache import DefinitionCache
from service.workflow import Workflow
from storage.db import open_database
from storage.store import Store

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
SOURCE = (PROCESSES / "suggestion_box.yaml").read_text(encoding="utf-8")
FILE = "processes/suggestion_box.yaml"
NOW = datetime(2026, 10, 15, 2, 0, tzinfo=UTC)


def compile_counting(cache: DefinitionCache, text: str, calls: list[str]) -> CompiledProcess:
    catalog = org_catalog(PROCESSES)

    def make() -> CompiledProcess:
        calls.append(text)
        return compile_stored(text, FILE, catalog)

    return cache.process(text, FILE, org_catalog_files(PROCESSES), make)


def test_a_changed_source_is_compiled_again_not_read_from_the_cache(tmp_path: Path) -> None:
    cache = DefinitionCache(tmp_path)
    calls: list[str] = []
    first = compile_counting(cache, SOURCE, calls)
    again = compile_counting(cache, SOURCE, calls)
    assert calls == [SOURCE], "the same source is compiled once"
    assert again.spec == first.spec and again.source_hash == first.source_hash

    changed = SOURCE.replace("title: 客户意见箱开启", "title: 意见箱 (renamed)", 1)
    assert changed != SOURCE
    proc = compile_counting(cache, changed, calls)
    assert calls == [SOURCE, changed]
    assert proc.spec.title.startswith("意见箱 (renamed)")
    assert proc.source_text == changed


def test_a_change_to_the_code_or_the_org_is_a_new_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DefinitionCache(tmp_path)
    calls: list[str] = []
    compile_counting(cache, SOURCE, calls)
    monkeypatch.setattr(defcache, "code_version", lambda: "another engine")
    compile_counting(cache, SOURCE, calls)
    assert len(calls) == 2, "a different engine must not read what the old one compiled"

    org = tmp_path / "org.yaml"
    org.write_text((PROCESSES / "org.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    made: list[int] = []
    cache.process(
        SOURCE,
        FILE,
        [org],
        lambda: made.append(1) or compile_stored(SOURCE, FILE, org_catalog(PROCESSES)),
    )
    org.write_text(org.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    cache.process(
        SOURCE,
        FILE,
        [org],
        lambda: made.append(1) or compile_stored(SOURCE, FILE, org_catalog(PROCESSES)),
    )
    assert made == [1, 1]


def test_a_corrupt_or_foreign_cache_file_is_ignored(tmp_path: Path) -> None:
    cache = DefinitionCache(tmp_path)
    calls: list[str] = []
    compile_counting(cache, SOURCE, calls)
    files = list(tmp_path.iterdir())
    assert files
    for path in files:
        path.write_bytes(defcache.FORMAT + b"\x80\x05not a pickle")
    proc = compile_counting(cache, SOURCE, calls)
    assert len(calls) == 2 and proc.machine is not None
    for path in tmp_path.iterdir():
        path.write_bytes(pickle.dumps({"no": "header"}))
    compile_counting(cache, SOURCE, calls)
    assert len(calls) == 3


def test_an_unwritable_cache_folder_only_costs_the_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    calls: list[str] = []
    proc = compile_counting(DefinitionCache(blocker / "cache"), SOURCE, calls)
    assert proc.spec.process == "suggestion_box"


def test_a_process_loaded_from_the_cache_runs_like_a_compiled_one(tmp_path: Path) -> None:
    """Expressions, machine and calendar are made again on load: start and act with a
    second Workflow (a new CLI process) that reads everything from the cache."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    cache_dir = tmp_path / "cache"

    def workflow() -> Workflow:
        return Workflow(
            Store(open_database(url, create=True)), PROCESSES, cache=DefinitionCache(cache_dir)
        )

    first = workflow()
    first.deploy([], now=NOW)
    snap = first.start("suggestion_box", "zhao.lei", {}, NOW)
    workflow().process("suggestion_box")  # compiled from the stored text: now in the cache
    assert any(p.name.startswith("process-") for p in cache_dir.iterdir())

    second = workflow()
    task = snap.tasks[0].id
    with pytest.raises(Exception, match="cannot be more than items_found"):
        second.act(task, "recorded", "zhao.lei", {"items_found": "1", "complaint_items": "2"})
    done = second.act(task, "recorded", "zhao.lei", {"items_found": "0"})
    assert done.state == "empty" and done.outcome == "empty"


def test_a_calendar_pickles_with_its_years_and_builds_others_on_demand() -> None:
    fresh = WorkingCalendar(default_calendar().spec)
    fresh.is_working_day(date(2026, 10, 1))
    loaded: WorkingCalendar = pickle.loads(pickle.dumps(fresh))
    assert 2026 in loaded._years and loaded._official is None
    for day in (date(2026, 10, 8), date(2026, 10, 11), date(2031, 10, 1), date(2031, 10, 9)):
        assert loaded.is_working_day(day) == default_calendar().is_working_day(day), day
    assert loaded.year_known(2026) and loaded.is_provisional(2031) == fresh.is_provisional(2031)
