"""A memory cap for tests that feed the engine payloads built to exhaust memory."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def memory_cap(extra: int = 400_000_000) -> Iterator[None]:
    """Cap this process's address space a little above its current size while a payload runs.

    The engine refuses every such payload before allocating anything; the cap only keeps a
    regression (or the old code, which folded ``'a'*1000000000`` into 4 GB) from taking the
    machine with it: it then fails fast with MemoryError instead.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm", encoding="ascii") as f:
        current = int(f.read().split()[0]) * resource.getpagesize()
    cap = current + extra if hard == resource.RLIM_INFINITY else min(current + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
