"""``--public-url`` on tick (and serve): per-person notices carry one-time action links."""

from __future__ import annotations

import pytest

from tests.cli.helpers import PROCESSES, Shell

START = (
    "start payment_delay --as liu.yang --set dealer=x --set amount=1 "
    "--set due_date=2026-11-30 --set requested_due=2026-12-31 --set reason=r"
)
NOW = "2026-11-30T10:00:00+08:00"


@pytest.fixture
def sh(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Shell:
    monkeypatch.setenv("SHENPI_LINK_SECRET", "0123456789abcdef0123456789abcdef")
    monkeypatch.delenv("SHENPI_PUBLIC_URL", raising=False)
    shell = Shell(sqlite_url)
    shell.ok(["deploy", str(PROCESSES / "payment_delay.yaml")], now=NOW)
    shell.ok(START, now=NOW)
    return shell


def test_tick_with_a_public_url_sends_a_link_per_action(sh: Shell) -> None:
    res = sh.ok("tick --public-url https://shenpi.example.com", now=NOW)
    text = res.out + res.err
    assert "approve in the browser: https://shenpi.example.com/a/" in text
    assert "reject in the browser: https://shenpi.example.com/a/" in text


def test_without_one_there_are_no_links(sh: Shell) -> None:
    res = sh.ok("tick", now=NOW)
    assert "xu.ming" in res.out + res.err and "/a/" not in res.out + res.err
