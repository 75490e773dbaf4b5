from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.notifiers.channels.sinks import HttpSink

TIMEOUT = 0.5  # every HTTP test is bounded by this, so a stalled server costs half a second


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=TIMEOUT) as c:
        yield c
