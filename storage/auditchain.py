"""Checking the audit log: entry hashes, chain links, anchors, and a head kept outside.

Three layers, each catching what the one before cannot:

- every entry's hash (HMAC-SHA256 when a key is configured) and its link to the entry
  before it in its chain: an altered, inserted or removed entry in the middle of a chain;
- each chain's anchor (``audit_chains``), moved in the same transaction as every append:
  the newest entries of a chain, or a whole chain, removed; every instance must have a
  chain: an instance whose chain and anchor were both removed;
- a head kept outside the database (``audit head``): a digest over every chain's last
  entry up to a sequence number, which no one can make the database match again after
  removing or rewriting entries up to that number, with or without the key.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from storage.audithash import GENESIS, anchor_mac, audit_hash, head_digest
from storage.auditkeys import KEY_ENV, KEY_FILE_ENV, AuditKeys

HEAD_PREFIX = "shenpi-audit-head/1"


@dataclass(frozen=True)
class AuditHead:
    """What an auditor copies out of the database to check it against later."""

    seq: int  # the highest entry sequence number (0: an empty log)
    entries: int  # entries with seq <= seq
    chains: int  # chains with an entry up to seq
    digest: str  # head_digest over every chain's last (seq, hash) up to seq

    def token(self) -> str:
        return f"{HEAD_PREFIX}:{self.seq}:{self.entries}:{self.chains}:{self.digest}"

    @classmethod
    def parse(cls, text: str) -> AuditHead:
        """A token (``shenpi-audit-head/1:...``), the text ``audit head`` printed (its
        token line is found among the others), or the JSON ``audit head -o json`` printed."""
        text = text.strip()
        if not text.startswith("{"):
            tokens = [line for line in text.splitlines() if line.startswith(HEAD_PREFIX)]
            text = tokens[0].strip() if len(tokens) == 1 else text
        if text.startswith("{"):
            try:
                doc = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"not valid JSON: {exc}") from None
            if not isinstance(doc, dict) or not isinstance(doc.get("head"), str):
                raise ValueError('expected the JSON of "audit head -o json" (with a "head" key)')
            text = doc["head"]
        parts = text.split(":")
        if len(parts) != 5 or parts[0] != HEAD_PREFIX:
            raise ValueError(
                f"expected {HEAD_PREFIX}:SEQ:ENTRIES:CHAINS:DIGEST, as printed by 'audit head'"
            )
        try:
            seq, entries, chains = (int(p) for p in parts[1:4])
        except ValueError:
            raise ValueError("SEQ, ENTRIES and CHAINS must be whole numbers") from None
        digest = parts[4]
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("DIGEST must be 64 lowercase hex digits")
        if min(seq, entries, chains) < 0:
            raise ValueError("SEQ, ENTRIES and CHAINS cannot be negative")
        return cls(seq, entries, chains, digest)


@dataclass
class AuditCheck:
    """The result of a verification: problems (one line each) and what was checked."""

    problems: list[str] = field(default_factory=list)
    entries: int = 0
    chains: int = 0
    keyed: Counter[str] = field(default_factory=Counter)  # key id -> entries
    unkeyed: int = 0
    signing_key: str | None = None
    head: AuditHead | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> list[str]:
        """What an ``ok`` says, including what it cannot vouch for."""
        lines = [f"ok: audit hash chains intact ({self.entries} entries in {self.chains} chains)"]
        if self.head is not None:
            lines.append(
                f"ok: matches the kept head at seq {self.head.seq} "
                f"({self.head.entries} entries in {self.head.chains} chains)"
            )
        if self.keyed:
            ids = ", ".join(f"{k} ({n})" for k, n in sorted(self.keyed.items()))
            lines.append(f"keyed: HMAC-SHA256 with key id {ids}")
        if self.signing_key is None:
            lines.append(
                f"note: no audit key configured ({KEY_ENV} or {KEY_FILE_ENV}): new entries get "
                "plain SHA-256, which anyone who can write the database can recompute"
            )
        if self.unkeyed:
            lines.append(
                f"note: {self.unkeyed} entries have plain SHA-256 hashes: only a kept head "
                "('audit head') protects them against a consistent rewrite"
            )
        return lines


class ChainChecker:
    """Consumes the log in seq order, then the anchors and instance ids; collects problems."""

    def __init__(self, keys: AuditKeys, head: AuditHead | None, require_key: bool) -> None:
        self.keys = keys
        self.kept = head
        self.require_key = require_key
        self.result = AuditCheck(signing_key=keys.current)
        self.tips: dict[str, tuple[int, str]] = {}
        self.counts: Counter[str] = Counter()
        self.tip_keys: dict[str, str | None] = {}  # chain -> key id of its newest entry
        self.first_keyed: int | None = None
        self.first_unkeyed: int | None = None
        self.unknown: Counter[str] = Counter()
        self.last_seq = 0
        self.at_head: tuple[str, int, int] | None = None  # digest, entries, chains

    def entry(self, row: Mapping[str, Any]) -> None:
        problems = self.result.problems
        seq, key = row["seq"], row["chain_key"]
        if self.kept is not None and self.at_head is None and seq > self.kept.seq:
            self._close_head()
        iid = row["instance_id"]
        expected_key = iid if iid is not None else f"process:{row['process']}"
        if key != expected_key:
            problems.append(f"seq {seq}: chain key {key!r} does not match its row")
        prev_seq, prev_hash = self.tips.get(key, (None, GENESIS))
        if row["prev_hash"] != prev_hash:
            after = f"seq {prev_seq}" if prev_seq is not None else "the chain start"
            problems.append(
                f"seq {seq}: prev_hash does not link to {after} of chain {key!r} "
                "(an entry was removed, inserted or reordered)"
            )
        kid = row["key_id"]
        expected: str | None
        if kid is None:
            self.result.unkeyed += 1
            if self.first_unkeyed is None:
                self.first_unkeyed = seq
            if self.first_keyed is not None:
                problems.append(
                    f"seq {seq}: plain SHA-256 although entries are keyed since seq "
                    f"{self.first_keyed} (rewritten without the key, or written by a process "
                    f"without {KEY_ENV})"
                )
            expected = audit_hash(row)
        else:
            if self.first_keyed is None:
                self.first_keyed = seq
            self.result.keyed[kid] += 1
            if kid in self.keys.secrets:
                expected = audit_hash(row, self.keys.secrets[kid])
            else:
                self.unknown[kid] += 1
                expected = None
        if expected is not None and expected != row["hash"]:
            problems.append(f"seq {seq}: hash mismatch (the entry was altered)")
        self.tips[key] = (seq, row["hash"])
        self.tip_keys[key] = kid
        self.counts[key] += 1
        self.result.entries += 1
        self.last_seq = max(self.last_seq, seq)

    def _close_head(self) -> None:
        self.at_head = (head_digest(self.tips), self.result.entries, len(self.tips))

    def anchors(self, rows: Iterable[Mapping[str, Any]]) -> None:
        problems = self.result.problems
        anchored: set[str] = set()
        for a in rows:
            chain, kid = a["chain_key"], a["key_id"]
            anchored.add(chain)
            last_seq, last_hash, entries = a["last_seq"], a["last_hash"], a["entries"]
            if kid is not None and kid not in self.keys.secrets:
                self.unknown[kid] += 1
            else:
                secret = None if kid is None else self.keys.secrets[kid]
                if anchor_mac(chain, last_seq, last_hash, entries, secret) != a["mac"]:
                    problems.append(f"chain {chain!r}: its anchor was altered (mac mismatch)")
            tip = self.tips.get(chain)
            if tip is None:
                problems.append(
                    f"chain {chain!r}: its anchor records {entries} entries up to seq "
                    f"{last_seq}, the log has none (the chain was removed)"
                )
                continue
            if kid != self.tip_keys[chain]:
                problems.append(
                    f"chain {chain!r}: its anchor is signed with key id {kid}, its newest "
                    f"entry with {self.tip_keys[chain]} (the anchor was replaced)"
                )
            n = self.counts[chain]
            if tip != (last_seq, last_hash) or n != entries:
                why = (
                    "the newest entries were removed"
                    if n < entries or tip[0] < last_seq
                    else "entries were added without moving it, or it was rewound"
                )
                problems.append(
                    f"chain {chain!r}: the log ends at seq {tip[0]} with {n} entries, its "
                    f"anchor at seq {last_seq} with {entries} ({why})"
                )
        for chain in sorted(set(self.tips) - anchored):
            problems.append(f"chain {chain!r}: no anchor (the anchor row was removed)")

    def instances(self, ids: Iterable[str]) -> None:
        for iid in ids:
            if iid not in self.tips:
                self.result.problems.append(
                    f"instance {iid}: no audit entries (its chain and anchor were removed)"
                )

    def finish(self) -> AuditCheck:
        result, problems = self.result, self.result.problems
        result.chains = len(self.tips)
        for kid, n in sorted(self.unknown.items()):
            problems.append(
                f"{n} entries or anchors are keyed with key id {kid}, which is not configured: "
                f"set {KEY_ENV} or {KEY_FILE_ENV} to verify them"
            )
        if self.require_key and self.first_unkeyed is not None:
            problems.append(
                f"{result.unkeyed} entries have plain SHA-256 hashes, the first at seq "
                f"{self.first_unkeyed} (--require-key)"
            )
        kept = self.kept
        if kept is not None:
            if self.at_head is None:
                self._close_head()
            assert self.at_head is not None
            digest, entries, chains = self.at_head
            if self.last_seq < kept.seq:
                problems.append(
                    f"the log ends at seq {self.last_seq}, before the kept head's seq "
                    f"{kept.seq} (the newest entries were removed)"
                )
            if (digest, entries, chains) != (kept.digest, kept.entries, kept.chains):
                problems.append(
                    f"the log up to seq {kept.seq} does not match the kept head: {entries} "
                    f"entries in {chains} chains (kept: {kept.entries} in {kept.chains}), digest "
                    f"{digest[:16]} (kept: {kept.digest[:16]}): entries were removed, altered "
                    "or re-hashed"
                )
            else:
                result.head = kept
        return result
