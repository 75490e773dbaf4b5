"""``tick --channels``, ``notices``, ``notices retry`` and ``channels test`` end to end."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from tests.notifiers.channels.sinks import HttpSink, Reply, Request

from .helpers import Shell

SECRET = "whsec_" + base64.b64encode(b"cli-secret-cli-secret-cl").decode()


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as running:
        yield running


def channels_yaml(folder: Path, sink: HttpSink) -> Path:
    path = folder / "channels.yaml"
    path.write_text(
        "channels:\n"
        f"  erp: {{type: webhook, url: '{sink.url}/hook', secrets: ['${{SHENPI_TEST_HOOK}}']}}\n",
        encoding="utf-8",
    )
    return path


def test_tick_without_the_secret_stops_with_one_line_naming_it(
    db_url: str, procs: Path, sink: HttpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHENPI_TEST_HOOK", raising=False)
    channels_yaml(procs, sink)  # found as processes/channels.yaml by default
    sh = Shell(db_url, procs)
    sh.refused("tick", "SHENPI_TEST_HOOK is not set", now="2026-09-30T10:00+08:00")
    assert sink.requests == []


def test_dead_letters_are_listed_and_retried(
    db_url: str, procs: Path, sink: HttpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHENPI_TEST_HOOK", SECRET)
    path = channels_yaml(tmp_path, sink)
    sink.default = Reply(400, {"error": "no such receiver"})
    sh = Shell(db_url, procs)
    sh.ok("deploy", now="2026-09-29T09:00+08:00")
    sh.ok("start chase --as wang.fang", now="2026-09-30T10:00+08:00")
    sh.ok(["tick", "--channels", str(path)], now="2026-09-30T10:01+08:00")
    dead = sh.js("notices --status dead")
    assert sorted(d["user_id"] for d in dead) == ["wang.fang", "zhao.lei"]
    assert all("HTTP 400" in d["last_error"] for d in dead)
    assert sh.js("notices --status sent") == []
    sh.refused("notices retry 999", "unknown dead delivery 999")
    assert len(sh.js("notices --status dead")) == 2  # the refused retry changed nothing

    def verified(request: Request) -> Reply:
        Webhook(SECRET).verify(request.body, dict(request.headers))
        return Reply(204, b"")

    sink.default = verified
    sh.ok(f"notices retry {dead[0]['id']}", now="2026-09-30T10:02+08:00")
    sh.ok(["tick", "--channels", str(path)], now="2026-09-30T10:02+08:00")
    [sent] = sh.js("notices --status sent")
    assert sent["delivery_id"] == dead[0]["delivery_id"]
    assert sink.requests[-1].headers["webhook-id"] == dead[0]["delivery_id"]


def test_channels_test_sends_one_message(
    db_url: str, procs: Path, sink: HttpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHENPI_TEST_HOOK", SECRET)
    path = channels_yaml(tmp_path, sink)
    sh = Shell(db_url, procs)
    out = sh.ok(["channels", "test", "erp", "--to", "chen.jun", "--channels", str(path)]).out
    assert "erp: sent to chen.jun" in out
    body = Webhook(SECRET).verify(sink.requests[0].body, dict(sink.requests[0].headers))
    assert body["data"]["recipient"] == "chen.jun"
    sh.refused(["channels", "test", "nope", "--to", "chen.jun", "--channels", str(path)], "nope")
    sink.default = Reply(500, {"error": "down"})
    sh.refused(
        ["channels", "test", "erp", "--to", "chen.jun", "--channels", str(path)], "transient"
    )


def test_tick_stops_when_org_yaml_prefers_a_channel_channels_yaml_lacks(
    db_url: str, procs: Path, sink: HttpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHENPI_TEST_HOOK", SECRET)
    path = channels_yaml(procs, sink)
    org = procs / "org.yaml"
    old = "contacts: {email: zhao.lei@example.com}"
    text = org.read_text(encoding="utf-8")
    assert old in text
    org.write_text(text.replace(old, "contacts: {channels: [sms]}"), encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.startswith("  zhao.lei:"))
    sh = Shell(db_url, procs)
    sh.refused(
        ["tick", "--channels", str(path)],
        f"org.yaml:{line}:",
        now="2026-09-30T10:00+08:00",
    )
    assert (
        "user 'zhao.lei' prefers channel 'sms'"
        in sh.refused(["tick", "--channels", str(path)], "sms", now="2026-09-30T10:00+08:00").err
    )
    assert sink.requests == []
