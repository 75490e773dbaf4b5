"""``audit --verify`` and ``audit head`` through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from storage import tables
from storage.audithash import anchor_mac
from storage.auditkeys import KEY_ENV, AuditKeys
from storage.store import Store
from tests.storage.test_audit import KEY, as_owner, entries, rewrite_plain

from .helpers import PROCESSES, Shell

RECEIVED = "2026-09-30T10:00:00+08:00"


@pytest.fixture
def sh(db_url: str) -> Shell:
    shell = Shell(db_url)
    shell.ok("deploy")
    return shell


def closed_complaint(sh: Shell) -> str:
    """A complaint taken from receipt to close: four steps in its chain."""
    sets = "--set kind=complaint --set customer=刘女士 --set contact=13800000000"
    inst = sh.js(f"start complaint --as wang.fang {sets} --set content=停电 --set subject=张某")
    iid = inst["id"]
    sh.ok(f"act {iid}-1 accept --as zhao.lei --set first_contact=已联系")
    sh.ok(f"act {iid}-2 resolve --as li.qiang --set resolution=已处理 --set findings=属实")
    sh.ok(f"act {iid}-3 close --as wang.fang --set callback_result=satisfied")
    assert sh.js(f"show {iid}")["status"] == "completed"
    return iid


def problems(sh: Shell, command: str) -> list[str]:
    res = sh(command)
    assert res.code == 1, (res.code, res.out, res.err)
    assert "Traceback" not in res.err and res.out == ""
    return res.err.strip().splitlines()


def test_head_then_verify_against_it(sh: Shell, tmp_path: Path) -> None:
    iid = closed_complaint(sh)
    head = sh.js("audit head")
    keys = {"head", "seq", "entries", "chains", "digest", "unkeyed", "key_id", "taken_at"}
    assert set(head) == keys
    assert head["head"].startswith("shenpi-audit-head/1:") and head["key_id"] is None
    text = sh.ok("audit head").out.splitlines()
    assert text[0] == head["head"] and "no audit key configured" in text[2]

    out = sh.ok(["audit", "--verify", "--head", head["head"]]).out
    assert f"ok: matches the kept head at seq {head['seq']}" in out
    assert "note: no audit key configured" in out
    kept = tmp_path / "head.json"
    kept.write_text(sh.ok("audit head -o json").out, encoding="utf-8")
    sh.ok("users")
    sh.ok(f"audit --verify --head {kept}")

    log, chains = tables.audit_log, tables.audit_chains
    with Store.open(sh.base[1], audit_keys=AuditKeys()) as store:
        rows = entries(store, iid)
        with as_owner(store) as conn:
            conn.execute(sa.delete(log).where(log.c.seq == rows[-1]["seq"]))
        assert problems(sh, "audit --verify") == [
            f"chain {iid!r}: the log ends at seq {rows[-2]['seq']} with 3 entries, its anchor "
            f"at seq {rows[-1]['seq']} with 4 (the newest entries were removed)"
        ]
        last = rows[-2]
        mac = anchor_mac(iid, last["seq"], last["hash"], 3, None)
        with as_owner(store) as conn:  # the anchor rewound to match: consistent inside
            conn.execute(
                sa.update(chains)
                .where(chains.c.chain_key == iid)
                .values(last_seq=last["seq"], last_hash=last["hash"], entries=3, mac=mac)
            )
    assert "ok: audit hash chains intact" in sh.ok("audit --verify").out
    ended, differs = problems(sh, f"audit --verify --head {kept}")
    assert rows[-1]["seq"] == head["seq"]  # the close was the newest entry of all
    assert ended == (
        f"the log ends at seq {rows[-2]['seq']}, before the kept head's seq {head['seq']} "
        "(the newest entries were removed)"
    )
    assert differs.startswith(f"the log up to seq {head['seq']} does not match the kept head")


def test_keyed_log_detects_a_plain_rewrite(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    sh = Shell(db_url)
    sh.ok("deploy")
    iid = closed_complaint(sh)
    head = sh.js("audit head")
    assert head["unkeyed"] == 0 and head["key_id"] is not None
    assert "keyed: HMAC-SHA256 with key id" in sh.ok("audit --verify --require-key").out
    with Store.open(db_url, audit_keys=AuditKeys()) as store, as_owner(store) as conn:
        rewrite_plain(conn, iid, {"actor": "eve"}, unkey=False)
    found = problems(sh, "audit --verify")
    assert len(found) == 5 and all("hash mismatch" in p for p in found[:4])
    assert found[4] == f"chain {iid!r}: its anchor was altered (mac mismatch)"
    monkeypatch.delenv(KEY_ENV)
    [line] = problems(sh, "audit --verify")
    # a deploy entry and a chain anchor per shipped process, 4 steps and the instance anchor
    shipped = sum(1 for p in PROCESSES.glob("*.yaml") if p.name != "org.yaml")
    assert line.startswith(f"{2 * shipped + 5} entries or anchors are keyed with key id")


def test_bad_head_and_bad_key_are_refused(sh: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("nonsense", "shenpi-audit-head/1:1:1:1:xyz"):
        res = sh(["audit", "--verify", "--head", bad])
        assert res.code == 2 and "--head" in res.err, res.err
    res = sh("audit --head x")
    assert res.code == 2 and "go with --verify" in res.err
    monkeypatch.setenv(KEY_ENV, "short")
    res = sh("audit --verify")
    assert res.code == 1
    assert res.err.strip() == (
        "error: SHENPI_AUDIT_KEY has 5 bytes; use at least 16 random bytes "
        "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
    )


def test_the_printed_head_is_what_verify_takes(sh: Shell, tmp_path: Path) -> None:
    """'audit head > kept.txt' then '--verify --head kept.txt': the text form as printed."""
    closed_complaint(sh)
    kept = tmp_path / "kept.txt"
    kept.write_text(sh.ok("audit head").out, encoding="utf-8")
    assert "ok: matches the kept head" in sh.ok(f"audit --verify --head {kept}").out
    assert sh.js("audit head")["head"] == sh.ok("audit -o json head").json()["head"]


def test_listing_options_do_not_go_with_audit_head(sh: Shell) -> None:
    for options in ("--verify", "--limit 5", "--actor wang.fang"):
        res = sh(f"audit {options} head")
        assert res.code == 2 and res.out == "", (options, res.out)
        assert f"{options.split()[0]} cannot go with 'audit head'" in res.err
