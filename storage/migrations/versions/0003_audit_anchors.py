"""Audit chain anchors, signing key ids, and an append-only audit log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

Adds ``audit_log.key_id`` (NULL for the plain SHA-256 entries written so far) and the
``audit_chains`` table with the head of every existing chain, computed here from the log.
Triggers refuse UPDATE, DELETE (and on PostgreSQL TRUNCATE) of audit entries, and refuse
deleting an anchor or moving it backwards, on both dialects: an accident or an
application bug cannot change history; a database owner still can (drop the trigger),
which is what the keyed hashes and the kept head (``audit head``) are for.

Written out in full rather than built from storage.tables, so that later changes to the
tables module cannot silently change what this revision creates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.migrations.helpers import pg_refusal

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = "audit log entries cannot be changed or removed (append-only)"
ANCHOR_ONLY_FORWARD = "audit chain anchors cannot be removed or moved backwards"

PG_UP = [
    pg_refusal("shenpi_audit_append_only", APPEND_ONLY),
    pg_refusal("shenpi_audit_anchor_forward", ANCHOR_ONLY_FORWARD),
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION shenpi_audit_append_only()",
    "CREATE TRIGGER audit_chains_no_delete BEFORE DELETE OR TRUNCATE ON audit_chains "
    "FOR EACH STATEMENT EXECUTE FUNCTION shenpi_audit_anchor_forward()",
    "CREATE TRIGGER audit_chains_forward BEFORE UPDATE ON audit_chains FOR EACH ROW "
    "WHEN (NEW.chain_key <> OLD.chain_key OR NEW.last_seq < OLD.last_seq "
    "OR NEW.entries < OLD.entries) EXECUTE FUNCTION shenpi_audit_anchor_forward()",
]
PG_DOWN = [
    "DROP TRIGGER IF EXISTS audit_chains_forward ON audit_chains",
    "DROP TRIGGER IF EXISTS audit_chains_no_delete ON audit_chains",
    "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
    "DROP FUNCTION IF EXISTS shenpi_audit_anchor_forward()",
    "DROP FUNCTION IF EXISTS shenpi_audit_append_only()",
]
SQLITE_UP = [
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END",
    "CREATE TRIGGER audit_chains_no_delete BEFORE DELETE ON audit_chains "
    f"BEGIN SELECT RAISE(ABORT, '{ANCHOR_ONLY_FORWARD}'); END",
    "CREATE TRIGGER audit_chains_forward BEFORE UPDATE ON audit_chains "
    "WHEN NEW.chain_key <> OLD.chain_key OR NEW.last_seq < OLD.last_seq "
    f"OR NEW.entries < OLD.entries BEGIN SELECT RAISE(ABORT, '{ANCHOR_ONLY_FORWARD}'); END",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS audit_chains_forward",
    "DROP TRIGGER IF EXISTS audit_chains_no_delete",
    "DROP TRIGGER IF EXISTS audit_log_no_delete",
    "DROP TRIGGER IF EXISTS audit_log_no_update",
]


def _anchor_mac(chain: str, last_seq: int, last_hash: str, entries: int) -> str:
    """As storage.audithash.anchor_mac without a key (existing entries are all unkeyed)."""
    doc = {"chain_key": chain, "last_seq": last_seq, "last_hash": last_hash, "entries": entries}
    text = "anchor" + json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("key_id", sa.String(16), nullable=True))
    chains = op.create_table(
        "audit_chains",
        sa.Column("chain_key", sa.String(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=True),
        sa.Column("mac", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain_key", name="pk_audit_chains"),
    )
    bind = op.get_bind()
    heads = bind.execute(
        sa.text(
            "SELECT a.chain_key, a.seq, a.hash, t.n FROM audit_log a JOIN "
            "(SELECT chain_key, max(seq) AS last, count(*) AS n FROM audit_log "
            "GROUP BY chain_key) t ON a.seq = t.last"
        )
    ).all()
    rows = [
        {
            "chain_key": key,
            "last_seq": seq,
            "last_hash": last,
            "entries": n,
            "key_id": None,
            "mac": _anchor_mac(key, seq, last, n),
        }
        for key, seq, last, n in heads
    ]
    if rows:
        op.bulk_insert(chains, rows)
    for statement in PG_UP if bind.dialect.name == "postgresql" else SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    for statement in PG_DOWN if bind.dialect.name == "postgresql" else SQLITE_DOWN:
        op.execute(statement)
    op.drop_table("audit_chains")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("key_id")
