"""Compiled definitions kept on disk between processes: each CLI command is a new process.

Compiling a stored version again (YAML with positions, validation, expressions) costs a
command more than its work, and org.yaml is parsed by every command that checks who may
act. Both are pure functions of their inputs, so their results are pickled under a key
that covers every input: the source text and file name, the org and calendar files they
were checked against, and the code that made them (the engine's own files, this module,
the Python version and the installed packages whose objects the pickle holds). A change
to any of them is a new key, so a stale form is never used; an unreadable or corrupt file
is ignored (and made again); a cache that cannot be written is simply not kept. Old
entries are not removed: deleting the folder is always safe.

What does not pickle is made again on load: each expression is compiled from its source
and the transitions machine is rebuilt (``attach_machine``). A calendar keeps the years
it built, and the years around the present are built before it is stored, so a loaded
process computes deadlines without importing the ``holidays`` package.

The files live in ``SHENPI_CACHE_DIR`` (empty: no cache), else ``$XDG_CACHE_HOME/shenpi``
or ``~/.cache/shenpi``, readable by their owner only: loading a pickle runs code, so the
folder must not be writable by anyone the user does not trust.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import sys
import tempfile
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from engine.calendar import WorkingCalendar
    from engine.org import Org
    from engine.process import CompiledProcess

CACHE_ENV = "SHENPI_CACHE_DIR"
ENGINE_DIR = Path(__file__).resolve().parents[1] / "engine"
# packages whose objects are in the pickles (models, holiday data): their install counts
PICKLED_PACKAGES = ("pydantic", "pydantic_core", "holidays")
NOT_PICKLED = ("machine",)  # CompiledProcess fields made again on load
WARM_YEARS = (-1, 0, 1, 2)  # calendar years built before a process is stored, from now
FORMAT = b"shenpi-defcache/1\n"

T = TypeVar("T")


def default_dir() -> Path | None:
    """The cache folder the environment names; None when caching is switched off."""
    named = os.environ.get(CACHE_ENV)
    if named is not None:
        return Path(named) if named.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shenpi"


@lru_cache(maxsize=1)
def code_version() -> str:
    """A digest of everything besides the inputs that decides a compiled form."""
    digest = hashlib.sha256(FORMAT)
    digest.update(sys.version.encode())
    for path in [Path(__file__), *sorted(ENGINE_DIR.glob("*.py"))]:  # this file: the format
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for name in PICKLED_PACKAGES:
        spec = find_spec(name)  # finds the package without importing it
        origin = spec.origin if spec is not None else None
        if origin is None:
            digest.update(f"{name}: none\0".encode())
            continue
        stat = os.stat(origin)
        digest.update(f"{name}: {origin} {stat.st_mtime_ns} {stat.st_size}\0".encode())
    return digest.hexdigest()


def _expression(source: str, where: str) -> Any:
    """An expression compiled again from its source (compiled templates do not pickle)."""
    from engine.expressions import Expression

    expr = Expression(source)
    expr.where = where
    return expr


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        from engine.expressions import Expression

        if type(obj) is Expression:
            return _expression, (obj.source, obj.where)
        return NotImplemented


class DefinitionCache:
    """Compiled processes and org directories on disk, by the digest of their inputs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def from_env(cls) -> DefinitionCache | None:
        folder = default_dir()
        return cls(folder) if folder is not None else None

    # ------------------------------------------------------------------ the two kinds

    def org(self, path: Path, make: Callable[[], Org]) -> Org:
        """org.yaml's directory, parsed and checked at most once per content."""
        try:
            text = path.read_bytes()
        except OSError:
            return make()  # let the loader say what is wrong with the file
        return self._through(self._key("org", str(path).encode(), text), make)

    def process(
        self,
        source_text: str,
        file: str,
        context_files: list[Path],
        make: Callable[[], CompiledProcess],
    ) -> CompiledProcess:
        """A stored version compiled at most once per source, org, calendars and code."""
        from engine.process import CompiledProcess, attach_machine

        parts = [file.encode(), source_text.encode("utf-8")]
        for path in context_files:
            try:
                parts += [str(path).encode(), path.read_bytes()]
            except OSError:
                parts += [str(path).encode(), b"(unreadable)"]
        key = self._key("process", *parts)

        def compiled() -> dict[str, Any]:
            proc = make()
            _warm(proc.calendar)
            return {
                f.name: getattr(proc, f.name) for f in fields(proc) if f.name not in NOT_PICKLED
            }

        state = self._through(key, compiled)
        return attach_machine(CompiledProcess(**state))

    # ------------------------------------------------------------------ files

    def _key(self, kind: str, *parts: bytes) -> str:
        digest = hashlib.sha256(code_version().encode() + b"\0" + kind.encode())
        for part in parts:
            digest.update(len(part).to_bytes(8, "big") + part)
        return f"{kind}-{digest.hexdigest()}"

    def _through(self, key: str, make: Callable[[], T]) -> T:
        found = self._load(key)
        if found is not None:
            return found  # type: ignore[no-any-return]
        value = make()
        self._store(key, value)
        return value

    def _load(self, key: str) -> Any:
        try:
            data = (self.folder / key).read_bytes()
        except OSError:
            return None
        if not data.startswith(FORMAT):
            return None
        try:
            return pickle.loads(data[len(FORMAT) :])
        except Exception:  # noqa: BLE001 - a corrupt or foreign file is no cache: make it again
            return None

    def _store(self, key: str, value: Any) -> None:
        buffer = io.BytesIO()
        buffer.write(FORMAT)
        try:
            _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
        except (pickle.PicklingError, TypeError, AttributeError):
            return  # something in it does not pickle: keep it in memory only
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(buffer.getvalue())
                os.replace(tmp, self.folder / key)  # whole or not at all, for every reader
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            pass  # a read-only home or a full disk: run without the cache


def _warm(calendar: WorkingCalendar) -> None:
    """Build the calendar's years around the present (and learn which years the package
    knows), so a process loaded from the cache rarely needs the ``holidays`` package."""
    this_year = datetime.now(UTC).year
    for offset in WARM_YEARS:
        calendar.is_working_day(datetime(this_year + offset, 1, 1).date())
    calendar.year_known(this_year)
