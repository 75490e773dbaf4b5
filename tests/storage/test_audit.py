"""The audit chain against tampering, on real SQLite and PostgreSQL.

Each tampering test plays a database owner: it switches the append-only triggers off
(as an owner can) and edits rows directly, then asks ``check_audit`` what it sees.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from engine.errors import AuditKeyError
from storage import tables
from storage.auditchain import AuditHead
from storage.audithash import GENESIS, HASHED_FIELDS, _canonical, anchor_mac, audit_hash, iso_utc
from storage.auditkeys import KEY_ENV, KEY_FILE_ENV, AuditKeys, key_id
from storage.db import alembic_config, migrate, open_engine
from storage.store import Store
from tests.storage.test_store import T0, audit, decide, start

KEY = "k" * 32
OTHER_KEY = "o" * 32
log, chains = tables.audit_log, tables.audit_chains


@pytest.fixture
def plain(db_url: str) -> Iterator[Store]:
    """A store without a key: plain SHA-256, as before keys existed."""
    with Store.open(db_url, audit_keys=AuditKeys()) as s:
        yield s


@pytest.fixture
def keyed(db_url: str) -> Iterator[Store]:
    with Store.open(db_url, audit_keys=AuditKeys.of(KEY)) as s:
        yield s


def history(store: Store) -> None:
    """A deploy (process chain), i1 started and closed, i2 started, a refusal on i1."""
    store.append_audit([audit(None, "deploy", data={"version": 1})], T0)
    store.apply(start("i1"), T0)
    store.apply(start("i2"), T0)
    snap = store.load_snapshot("i1")
    store.apply(decide(snap, snap.tasks[0]), T0)
    store.append_audit([audit("i1", "denied", actor="mallory")], T0)
    assert store.check_audit().problems == []


@contextmanager
def as_owner(store: Store) -> Iterator[sa.Connection]:
    """A transaction with the append-only triggers off, as a database owner can have it."""
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            for table in ("audit_log", "audit_chains"):
                conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            yield conn
            for table in ("audit_log", "audit_chains"):
                conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        else:
            found = conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name IN ('audit_log', 'audit_chains')"
            ).all()
            for name, _ in found:
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
            yield conn
            for _, sql in found:
                conn.exec_driver_sql(sql)


def entries(store: Store, chain: str) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        stmt = sa.select(log).where(log.c.chain_key == chain).order_by(log.c.seq)
        return [dict(r) for r in conn.execute(stmt).mappings()]


def rewrite_plain(conn: sa.Connection, chain: str, change: dict[str, Any], *, unkey: bool) -> None:
    """Change the chain's first entry, then re-hash the chain and its anchor with SHA-256.

    What anyone can do without the key: the hash is public. ``unkey`` also clears the
    key id, so the entries claim to be plain ones.
    """
    rows = conn.execute(sa.select(log).where(log.c.chain_key == chain).order_by(log.c.seq))
    rows = [dict(r) for r in rows.mappings()]
    rows[0].update(change)
    prev = GENESIS
    for i, row in enumerate(rows):
        row["prev_hash"] = prev
        row["hash"] = prev = audit_hash(row)
        values = {**(change if i == 0 else {}), "prev_hash": row["prev_hash"], "hash": row["hash"]}
        if unkey:
            values["key_id"] = None
        conn.execute(sa.update(log).where(log.c.seq == row["seq"]).values(values))
    last = rows[-1]
    mac = anchor_mac(chain, last["seq"], last["hash"], len(rows), None)
    values = {"last_hash": last["hash"], "mac": mac}
    if unkey:
        values["key_id"] = None
    conn.execute(sa.update(chains).where(chains.c.chain_key == chain).values(values))


# ---------------------------------------------------------------------- what is detected


def test_intact_history_verifies_keyed_and_plain(db_url: str) -> None:
    with Store.open(db_url, audit_keys=AuditKeys()) as s:
        s.append_audit([audit("i9", "note")], T0)  # written before the key existed
    with Store.open(db_url, audit_keys=AuditKeys.of(KEY)) as s:
        history(s)
        check = s.check_audit()
        assert check.ok and check.entries == 6 and check.chains == 4
        assert check.unkeyed == 1 and check.keyed == {key_id(KEY.encode()): 5}
        assert all(r["key_id"] == key_id(KEY.encode()) for r in entries(s, "i1"))


def test_altering_an_entry_in_the_middle_is_detected(plain: Store) -> None:
    history(plain)
    victim = entries(plain, "i1")[1]
    with as_owner(plain) as conn:
        conn.execute(sa.update(log).where(log.c.seq == victim["seq"]).values(actor="eve"))
    assert plain.check_audit().problems == [
        f"seq {victim['seq']}: hash mismatch (the entry was altered)"
    ]


def test_deleting_the_newest_entry_of_an_instance_is_detected(plain: Store) -> None:
    history(plain)
    rows = entries(plain, "i1")
    assert plain.load_snapshot("i1").status == "completed"
    with as_owner(plain) as conn:
        conn.execute(sa.delete(log).where(log.c.seq == rows[-1]["seq"]))
    assert plain.check_audit().problems == [
        f"chain 'i1': the log ends at seq {rows[-2]['seq']} with 2 entries, its anchor at seq "
        f"{rows[-1]['seq']} with 3 (the newest entries were removed)"
    ]
    # The next entry links to the anchor, not to what is left: the gap stays visible.
    [seq] = plain.append_audit([audit("i1", "denied", actor="x")], T0)
    assert plain.check_audit().problems == [
        f"seq {seq}: prev_hash does not link to seq {rows[-2]['seq']} of chain 'i1' (an entry was "
        "removed, inserted or reordered)",
        f"chain 'i1': the log ends at seq {seq} with 3 entries, its anchor at seq {seq} with 4 "
        "(the newest entries were removed)",
    ]


def test_deleting_a_middle_entry_is_detected(plain: Store) -> None:
    history(plain)
    rows = entries(plain, "i1")
    with as_owner(plain) as conn:
        conn.execute(sa.delete(log).where(log.c.seq == rows[1]["seq"]))
    problems = plain.check_audit().problems
    assert problems[0].startswith(f"seq {rows[2]['seq']}: prev_hash does not link")
    assert "anchor at seq" in problems[1] and len(problems) == 2


def test_deleting_a_whole_chain_is_detected(plain: Store) -> None:
    history(plain)
    with as_owner(plain) as conn:
        conn.execute(sa.delete(log).where(log.c.chain_key == "i2"))
    assert plain.check_audit().problems == [
        "chain 'i2': its anchor records 1 entries up to seq 3, the log has none "
        "(the chain was removed)",
        "instance i2: no audit entries (its chain and anchor were removed)",
    ]
    with as_owner(plain) as conn:
        conn.execute(sa.delete(chains).where(chains.c.chain_key == "i2"))
    assert plain.check_audit().problems == [
        "instance i2: no audit entries (its chain and anchor were removed)"
    ]


def test_deleting_an_anchor_is_detected(plain: Store) -> None:
    history(plain)
    with as_owner(plain) as conn:
        conn.execute(sa.delete(chains).where(chains.c.chain_key == "process:leave"))
    assert plain.check_audit().problems == [
        "chain 'process:leave': no anchor (the anchor row was removed)"
    ]


def test_rewriting_with_plain_sha256_is_detected_only_when_keyed(db_url: str) -> None:
    """The actor changed and every hash after it recomputed, anchor included."""
    with Store.open(db_url, audit_keys=AuditKeys()) as s:
        history(s)
        with as_owner(s) as conn:
            rewrite_plain(conn, "i1", {"actor": "eve"}, unkey=False)
        assert s.check_audit().problems == []  # the documented limit without a key or a kept head


def test_rewrite_keeping_the_key_id_is_detected(keyed: Store) -> None:
    history(keyed)
    rows = entries(keyed, "i1")
    with as_owner(keyed) as conn:
        rewrite_plain(conn, "i1", {"actor": "eve"}, unkey=False)
    problems = keyed.check_audit().problems
    assert problems == [
        *(f"seq {r['seq']}: hash mismatch (the entry was altered)" for r in rows),
        "chain 'i1': its anchor was altered (mac mismatch)",
    ]


def test_rewrite_posing_as_unkeyed_entries_is_detected(keyed: Store) -> None:
    history(keyed)
    rows = entries(keyed, "i1")
    with as_owner(keyed) as conn:
        rewrite_plain(conn, "i1", {"actor": "eve"}, unkey=True)
    problems = keyed.check_audit().problems
    assert len(problems) == len(rows)
    for row, problem in zip(rows, problems, strict=True):
        assert problem.startswith(f"seq {row['seq']}: plain SHA-256 although entries are keyed")


def test_a_fully_unkeyed_rewrite_fails_require_key(keyed: Store) -> None:
    history(keyed)
    with as_owner(keyed) as conn:
        for chain in ("process:leave", "i1", "i2"):
            rewrite_plain(conn, chain, {}, unkey=True)
    assert keyed.check_audit().problems == []  # indistinguishable from a log from before the key
    assert keyed.check_audit(require_key=True).problems == [
        "5 entries have plain SHA-256 hashes, the first at seq 1 (--require-key)"
    ]


def test_entries_with_an_unknown_key_are_not_vouched_for(db_url: str) -> None:
    with Store.open(db_url, audit_keys=AuditKeys.of(OTHER_KEY)) as s:
        history(s)
    kid = key_id(OTHER_KEY.encode())
    for keys in (AuditKeys(), AuditKeys.of(KEY)):
        with Store.open(db_url, audit_keys=keys) as s:
            assert s.check_audit().problems == [
                f"8 entries or anchors are keyed with key id {kid}, which is not configured: "
                f"set {KEY_ENV} or {KEY_FILE_ENV} to verify them"
            ]
    # Rotation: a new signing key first, the old one after it, both verify.
    with Store.open(db_url, audit_keys=AuditKeys.of(KEY, OTHER_KEY)) as s:
        s.append_audit([audit("i1", "note")], T0)
        check = s.check_audit()
        assert check.ok and check.keyed == {kid: 5, key_id(KEY.encode()): 1}


# ---------------------------------------------------------------------- the kept head


def test_kept_head_detects_truncation_even_with_anchors_rewound(plain: Store) -> None:
    history(plain)
    head, unkeyed = plain.audit_head()
    assert (head.seq, head.entries, head.chains, unkeyed) == (5, 5, 3, 5)
    assert plain.check_audit(head).problems == []
    # Later appends do not disturb the check against an older head.
    plain.apply(start("i3"), T0)
    assert plain.check_audit(head).problems == []

    rows = entries(plain, "i1")
    keep = rows[:-2]  # drop i1's two newest entries, rewind the anchor to match
    with as_owner(plain) as conn:
        conn.execute(sa.delete(log).where(log.c.seq.in_([r["seq"] for r in rows[-2:]])))
        last = keep[-1]
        mac = anchor_mac("i1", last["seq"], last["hash"], len(keep), None)
        conn.execute(
            sa.update(chains)
            .where(chains.c.chain_key == "i1")
            .values(last_seq=last["seq"], last_hash=last["hash"], entries=len(keep), mac=mac)
        )
    assert plain.check_audit().problems == []  # consistent inside the database
    problems = plain.check_audit(head).problems
    assert len(problems) == 1
    assert problems[0].startswith(
        "the log up to seq 5 does not match the kept head: 3 entries in 3 chains (kept: 5 in 3)"
    )


def rewind(conn: sa.Connection, chain: str, rows: list[dict[str, Any]], *, unkey: bool) -> None:
    """Point the chain's anchor at ``rows[-1]`` with a plain mac, as one can without the key."""
    last = rows[-1]
    mac = anchor_mac(chain, last["seq"], last["hash"], len(rows), None)
    values = {"last_seq": last["seq"], "last_hash": last["hash"], "entries": len(rows)}
    values.update(mac=mac, **({"key_id": None} if unkey else {}))
    conn.execute(sa.update(chains).where(chains.c.chain_key == chain).values(values))


def test_truncation_with_a_rewound_anchor_is_detected_when_keyed(keyed: Store) -> None:
    history(keyed)
    rows = entries(keyed, "i1")
    with as_owner(keyed) as conn:
        conn.execute(sa.delete(log).where(log.c.seq == rows[-1]["seq"]))
        rewind(conn, "i1", rows[:-1], unkey=False)
    assert keyed.check_audit().problems == ["chain 'i1': its anchor was altered (mac mismatch)"]
    with as_owner(keyed) as conn:
        rewind(conn, "i1", rows[:-1], unkey=True)
    kid = key_id(KEY.encode())
    assert keyed.check_audit().problems == [
        f"chain 'i1': its anchor is signed with key id None, its newest entry with {kid} "
        "(the anchor was replaced)"
    ]


def test_kept_head_detects_removal_of_the_newest_entries_everywhere(plain: Store) -> None:
    history(plain)
    head, _ = plain.audit_head()
    with as_owner(plain) as conn:
        conn.execute(sa.delete(log).where(log.c.seq == head.seq))
        conn.execute(sa.delete(chains).where(chains.c.chain_key == "i1"))
    problems = plain.check_audit(head).problems
    assert problems[-2] == (
        "the log ends at seq 4, before the kept head's seq 5 (the newest entries were removed)"
    )
    assert problems[-1].startswith("the log up to seq 5 does not match the kept head")


def test_kept_head_detects_a_consistent_plain_rewrite(plain: Store) -> None:
    history(plain)
    head, _ = plain.audit_head()
    with as_owner(plain) as conn:
        rewrite_plain(conn, "i1", {"actor": "eve"}, unkey=False)
    assert plain.check_audit().problems == []
    [problem] = plain.check_audit(head).problems
    assert "does not match the kept head: 5 entries in 3 chains (kept: 5 in 3)" in problem


def test_head_of_an_empty_log_and_parsing(plain: Store) -> None:
    head, unkeyed = plain.audit_head()
    assert (head.seq, head.entries, head.chains, unkeyed) == (0, 0, 0, 0)
    assert plain.check_audit(head).problems == []
    assert AuditHead.parse(head.token()) == head
    assert AuditHead.parse(json.dumps({"head": head.token(), "seq": 0})) == head
    for bad, why in [
        ("nonsense", "expected shenpi-audit-head/1:"),
        ("shenpi-audit-head/1:x:0:0:" + "0" * 64, "whole numbers"),
        ("shenpi-audit-head/1:1:1:1:abc", "64 lowercase hex"),
        ("{nope", "not valid JSON"),
        ("[1]", "expected shenpi-audit-head/1:"),
    ]:
        with pytest.raises(ValueError, match=why):
            AuditHead.parse(bad)


@pytest.mark.postgres
def test_heads_taken_during_concurrent_appends_all_verify(pg_url: str) -> None:
    """Entries commit out of seq order on PostgreSQL; a head must not catch half of that."""
    writers, heads, errors = 4, [], []
    stores = [Store.open(pg_url) for _ in range(writers + 1)]
    stop = threading.Event()

    def write(i: int) -> None:
        try:
            j = 0
            while not stop.is_set() and j < 200:
                stores[i].append_audit([audit(f"w{i}-{j % 7}", "note")], T0)
                j += 1
        except Exception as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    try:
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) and len(heads) < 30:
            heads.append(stores[-1].audit_head()[0])
        stop.set()
        for t in threads:
            t.join(60)
        assert errors == []
        assert len(heads) >= 2
        for head in heads:
            assert stores[-1].check_audit(head).problems == [], head
    finally:
        stop.set()
        for s in stores:
            s.close()


# ---------------------------------------------------------------------- guards in the database


def test_the_database_refuses_changing_audit_rows(plain: Store) -> None:
    history(plain)
    refused = "cannot be changed or removed"
    for stmt in (
        sa.update(log).where(log.c.seq == 2).values(actor="eve"),
        sa.delete(log).where(log.c.seq == 5),
        sa.delete(log),
    ):
        with pytest.raises(sa.exc.DBAPIError, match=refused), plain.engine.begin() as conn:
            conn.execute(stmt)
    anchors = "cannot be removed or moved backwards"
    for stmt in (
        sa.delete(chains).where(chains.c.chain_key == "i1"),
        sa.update(chains).where(chains.c.chain_key == "i1").values(entries=1),
        sa.update(chains).where(chains.c.chain_key == "i1").values(last_seq=1),
    ):
        with pytest.raises(sa.exc.DBAPIError, match=anchors), plain.engine.begin() as conn:
            conn.execute(stmt)
    if plain.dialect == "postgresql":
        for table in ("audit_log", "audit_chains"):
            with pytest.raises(sa.exc.DBAPIError, match="TRUNCATE"), plain.engine.begin() as c:
                c.exec_driver_sql(f"TRUNCATE {table}")
    assert plain.check_audit().problems == []
    assert len(entries(plain, "i1")) == 3


# ---------------------------------------------------------------------- migration and encoding


def test_migration_anchors_an_existing_log(db_url: str) -> None:
    """A database written at revision 0001 verifies after the upgrade and grows on."""
    from alembic import command

    engine = open_engine(db_url)
    try:
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        types = {"at": tables.UTCDateTime, "recorded_at": tables.UTCDateTime}
        types["data"] = tables.json_type()
        names = [*HASHED_FIELDS, "hash"]
        old_log = sa.table("audit_log", *(sa.column(c, types.get(c)) for c in names))
        tips = {"i1": GENESIS, "i2": GENESIS}
        with engine.begin() as conn:
            for n, (chain, actor) in enumerate([("i1", "a"), ("i2", "b"), ("i1", "c")], 1):
                row: dict[str, Any] = {name: None for name in HASHED_FIELDS}
                row.update(at=T0, recorded_at=T0, actor=actor, process="leave", action="note")
                row.update(instance_id=chain, chain_key=chain, prev_hash=tips[chain])
                row.update(data={"n": n, "值": [1.5, None]})
                row["hash"] = tips[chain] = audit_hash(row)
                conn.execute(sa.insert(old_log).values(row))
        assert migrate(engine) is True
    finally:
        engine.dispose()
    with Store.open(db_url, audit_keys=AuditKeys.of(KEY)) as s:
        assert s.check_audit().problems == []
        s.append_audit([audit("i1", "note")], T0)
        check = s.check_audit()
        assert check.ok and check.entries == 4 and check.unkeyed == 3


def test_hash_of_valid_text_is_unchanged_and_invalid_text_does_not_crash(db_url: str) -> None:
    row: dict[str, Any] = {name: None for name in HASHED_FIELDS}
    row.update(at=T0, recorded_at=T0, actor="张三", process="p", action="a", data={"z": "值"})
    row.update(chain_key="p", prev_hash=GENESIS)
    doc = {k: iso_utc(v) if k in ("at", "recorded_at") else v for k, v in row.items()}
    before = hashlib.sha256((GENESIS + _canonical(doc)).encode("utf-8")).hexdigest()
    assert audit_hash(row) == before  # the formula of every existing entry
    broken = dict(row, actor="bad\udc80")
    assert audit_hash(broken) != audit_hash(dict(row, actor="bad"))
    assert len(audit_hash(broken, KEY.encode())) == 64
    if db_url.startswith("sqlite"):  # PostgreSQL refuses such text; SQLite keeps it escaped
        with Store.open(db_url, audit_keys=AuditKeys.of(KEY)) as s:
            s.append_audit([audit("i1", "note", data={"x": "\ud800"})], T0)
            assert s.check_audit().problems == []
            assert s.audit_head()[0].entries == 1


# ---------------------------------------------------------------------- keys from the environment


def test_keys_from_the_environment(tmp_path: Any) -> None:
    assert AuditKeys.from_env({}).current is None
    assert AuditKeys.from_env({KEY_ENV: KEY}).current == key_id(KEY.encode())
    keyfile = tmp_path / "audit.key"
    keyfile.write_text(f"# rotated 2026-11\n{OTHER_KEY}\n\n{KEY}\n", encoding="utf-8")
    keys = AuditKeys.from_env({KEY_FILE_ENV: str(keyfile)})
    assert keys.current == key_id(OTHER_KEY.encode()) and len(keys.secrets) == 2
    with pytest.raises(AuditKeyError, match="SHENPI_AUDIT_KEY has 5 bytes; use at least 16"):
        AuditKeys.from_env({KEY_ENV: "short"})
    with pytest.raises(AuditKeyError, match="not both"):
        AuditKeys.from_env({KEY_ENV: KEY, KEY_FILE_ENV: str(keyfile)})
    with pytest.raises(AuditKeyError, match="cannot read the key file"):
        AuditKeys.from_env({KEY_FILE_ENV: str(tmp_path / "missing")})
    keyfile.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(AuditKeyError, match="holds no key"):
        AuditKeys.from_env({KEY_FILE_ENV: str(keyfile)})


def test_store_takes_its_key_from_the_environment(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    with Store.open(sqlite_url) as s:
        s.append_audit([audit("i1", "note")], T0 + timedelta(seconds=1))
        assert entries(s, "i1")[0]["key_id"] == key_id(KEY.encode())
    monkeypatch.delenv(KEY_ENV)
    with Store.open(sqlite_url) as s:
        [problem] = s.check_audit().problems
        assert "which is not configured" in problem
