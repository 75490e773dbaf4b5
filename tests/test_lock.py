"""The lock is what CI and the README install; these tests keep it honest.

Some tests compare against output whose exact form belongs to a dependency (the published
JSON Schema is pydantic's rendering). Such a test is only meaningful when the dependency is
the one the lock pins, so a drifted environment is reported here, by name, instead of as an
obscure diff somewhere else.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def locked() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(text) for text in project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(Requirement(text) for text in extra)
    return reqs


def test_the_lock_pins_every_declared_dependency_within_its_range() -> None:
    pins = locked()
    problems = []
    for req in declared():
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name} is declared in pyproject.toml but not locked")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} is locked but pyproject allows {req.specifier}")
    assert not problems, "; ".join(problems) + " (regenerate requirements.lock, see README)"


@pytest.mark.parametrize("name", sorted(locked()))
def test_the_installed_version_is_the_locked_one(name: str) -> None:
    try:
        installed = Version(metadata.version(name))
    except metadata.PackageNotFoundError:
        pytest.fail(f"{name} is locked but not installed: pip install -r requirements.lock")
    assert installed == locked()[name], (
        f"{name} {installed} is installed but {locked()[name]} is locked: "
        "pip install -r requirements.lock -e '.[test]'"
    )
