"""What an audit entry's hash covers, and the digests of the chain, its anchors and head.

One definition of the hashed document (:func:`entry_document`) serves both the writer,
which hashes an entry before it is stored, and the checker, which hashes the stored row:
a field added to one and not the other would make every entry look altered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

GENESIS = ""  # prev_hash of the first entry of every chain
# Every column of an entry but seq, hash and key_id; an entry has them all before it is
# linked into its chain, which adds prev_hash.
ENTRY_FIELDS = (
    "at",
    "recorded_at",
    "actor",
    "on_behalf_of",
    "process",
    "instance_id",
    "task_id",
    "action",
    "from_state",
    "to_state",
    "data",
    "chain_key",
)
HASHED_FIELDS = (*ENTRY_FIELDS, "prev_hash")


def iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _encode(text: str) -> bytes:
    """UTF-8, but a lone surrogate (invalid Unicode) is encoded instead of raising.

    Valid text gives exactly the bytes of plain UTF-8, so hashes of existing entries
    do not change; invalid text still gets a deterministic hash instead of a crash.
    """
    return text.encode("utf-8", "surrogatepass")


def chain_digest(prev_hash: str, doc: Mapping[str, Any], key: bytes | None) -> str:
    """sha256(prev_hash + canonical JSON), or HMAC-SHA256 of the same bytes with ``key``."""
    message = _encode(prev_hash + _canonical(doc))
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.digest(key, message, "sha256").hex()


def entry_document(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed fields of an entry (a stored row or one about to be), times as ISO UTC.

    Canonical means sorted keys, no spaces, UTC datetimes with microseconds: the same
    bytes whether the row comes from SQLite or PostgreSQL (JSONB reorders keys).
    """
    return {
        name: iso_utc(v) if isinstance(v := entry[name], datetime) else v for name in ENTRY_FIELDS
    }


def link_hash(prev_hash: str, document: Mapping[str, Any], key: bytes | None) -> str:
    """The hash of an entry whose :func:`entry_document` is ``document``, after prev_hash."""
    return chain_digest(prev_hash, {**document, "prev_hash": prev_hash}, key)


def audit_hash(row: Mapping[Any, Any], key: bytes | None = None) -> str:
    """The hash of a stored entry: its document linked to its prev_hash."""
    return link_hash(row["prev_hash"], entry_document(row), key)


def anchor_mac(chain: str, last_seq: int, last_hash: str, entries: int, key: bytes | None) -> str:
    """Signs a chain's anchor row, so that with a key it cannot be rewound by hand."""
    doc = {"chain_key": chain, "last_seq": last_seq, "last_hash": last_hash, "entries": entries}
    return chain_digest("anchor", doc, key)


def head_digest(tips: Mapping[str, tuple[int, str]]) -> str:
    """One digest over every chain's (key, last seq, last hash): what an auditor keeps."""
    digest = hashlib.sha256(b"shenpi-audit-head/1\n")
    for key in sorted(tips):
        seq, last = tips[key]
        digest.update(_encode(_canonical([key, seq, last]) + "\n"))
    return digest.hexdigest()


def lock_key(key: str) -> int:
    """A signed 64-bit advisory lock id for a chain key (computed here so it sorts here)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big", signed=True)
