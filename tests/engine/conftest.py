"""Builders for pure-engine tests: a small org and processes compiled from YAML text."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from engine.org import Org, load_org
from engine.process import CompiledProcess, compile_process
from engine.yamlsafe import load_text

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 9, 30, 10, 0, tzinfo=SH)

ORG_YAML = """
org: test
roles:
  clerk: {}
  vp: {}
  gm: {}
  cfo: {}
  head: {}
users:
  ann: {name: Ann, roles: [clerk]}
  bob: {name: Bob, roles: [vp, clerk]}
  cat: {name: Cat, roles: [vp]}
  dan: {name: Dan, roles: [gm], active: false, delegate: eve}
  eve: {name: Eve, roles: [clerk]}
  fay: {name: Fay, roles: [cfo]}
  gus: {name: Gus, roles: [head, cfo]}
"""


@pytest.fixture
def org() -> Org:
    return load_org(load_text(ORG_YAML, "org.yaml"))


def build(text: str, org: Org) -> CompiledProcess:
    return compile_process(load_text(text, "p.yaml"), org)
