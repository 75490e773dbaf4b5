"""The schema, as SQLAlchemy Core tables.

Core rather than ORM because ``Store.apply`` sits on the hot path of every action: it
needs a handful of cached, compiled statements, not an identity map and unit of work.
The Alembic migrations in ``storage/migrations`` are the authority on what exists in a
database; a test checks that they and this module agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from storage.rows import time_out, utc

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Instants, stored as UTC and always handed back timezone-aware in UTC.

    SQLite has no time zone type and would otherwise return naive datetimes, while
    PostgreSQL returns them in the session's zone; callers compare and hash these
    values, so both backends must give the very same object back. Naive input is
    refused rather than guessed at: a wrong guess would silently shift deadlines.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = utc(value)
        if dialect.name == "sqlite":
            # SQLite stores text; fixed-width naive UTC keeps comparisons and ORDER BY right.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return time_out(value)


def json_type() -> sa.types.TypeEngine[Any]:
    """Portable JSON, as JSONB on PostgreSQL (compact, and indexable should we need it)."""
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


# SQLite only auto-numbers an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT one.
BigSerial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

definitions = sa.Table(
    "definitions",
    metadata,
    sa.Column("process", sa.String, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("source_hash", sa.String(64), nullable=False),
    sa.Column("source_text", sa.Text, nullable=False),
    sa.Column("file", sa.String, nullable=False),
    sa.Column("deployed_at", UTCDateTime, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("deployed_by", sa.String, nullable=False),
)

instances = sa.Table(
    "instances",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("process", sa.String, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("outcome", sa.String),
    sa.Column("variables", json_type(), nullable=False),
    sa.Column("requester", sa.String, nullable=False),
    sa.Column("task_seq", sa.Integer, nullable=False),
    sa.Column("approvers", json_type(), nullable=False),
    sa.Column("meta", json_type(), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
    # a linked process's parent instance (engine.links; also in meta.parent), migration 0012
    sa.Column("parent_id", sa.String),
    # Listings page by (created_at, id): each filter they offer gets an index ending in it.
    sa.Index("ix_instances_created_at_id", "created_at", "id"),
    sa.Index("ix_instances_state_created_at_id", "state", "created_at", "id"),
    sa.Index("ix_instances_status_created_at_id", "status", "created_at", "id"),
    sa.Index("ix_instances_process_state_created_at_id", "process", "state", "created_at", "id"),
    sa.Index("ix_instances_process_status_created_at_id", "process", "status", "created_at", "id"),
    sa.Index("ix_instances_requester_created_at_id", "requester", "created_at", "id"),
    sa.Index("ix_instances_parent_id_created_at_id", "parent_id", "created_at", "id"),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("instance_id", sa.String, sa.ForeignKey("instances.id"), nullable=False),
    sa.Column("process", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("roles", json_type(), nullable=False),
    sa.Column("mode", sa.String, nullable=False),
    sa.Column("actions", json_type(), nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("due_at", UTCDateTime),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("decision", sa.String),
    sa.Column("decided_by", sa.String),
    sa.Column("signoffs", json_type(), nullable=False),
    # claim, who was resolved and why, signers added, last 催办 (engine.records.TaskRecord)
    sa.Column("meta", json_type(), nullable=False, server_default=sa.text("'{}'")),
    sa.Index("ix_tasks_instance_id_status", "instance_id", "status"),
    sa.Index("ix_tasks_status_due_at_id", "status", "due_at", "id"),
    # reports count the tasks decided in a period (migration 0010)
    sa.Index(
        "ix_tasks_closed_at",
        "closed_at",
        sqlite_where=sa.text("closed_at IS NOT NULL"),
        postgresql_where=sa.text("closed_at IS NOT NULL"),
    ),
)

# The pending slots of open tasks only, as lookup keys (a role id, or ``user:<id>`` for a
# named person, engine.slots): "what may I act on" becomes an index range scan per key
# instead of a JSON search through every task ever opened. due_at is the task's, copied
# here so that one role's tasks come out of the index already in inbox order.
task_roles = sa.Table(
    "task_roles",
    metadata,
    sa.Column(
        "task_id", sa.String, sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("role", sa.String, primary_key=True),
    sa.Column("due_at", UTCDateTime),
    sa.Index("ix_task_roles_role_due_at_task_id", "role", "due_at", "task_id"),
    sqlite_with_rowid=False,  # one B-tree for rows and key (migration 0006)
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", BigSerial, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("on_behalf_of", sa.String),
    sa.Column("process", sa.String, nullable=False),
    sa.Column("instance_id", sa.String),
    sa.Column("task_id", sa.String),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("from_state", sa.String),
    sa.Column("to_state", sa.String),
    sa.Column("data", json_type(), nullable=False),
    sa.Column("chain_key", sa.String, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # Id of the HMAC key that signed the entry (storage.auditkeys); NULL: plain SHA-256.
    sa.Column("key_id", sa.String(16)),
    # Each index costs a page write per entry (see migration 0006): an instance's entries
    # are its chain (chain_key, seq); few entries name someone acted for.
    sa.Index("ix_audit_log_actor_seq", "actor", "seq"),
    sa.Index(
        "ix_audit_log_on_behalf_of_seq",
        "on_behalf_of",
        "seq",
        sqlite_where=sa.text("on_behalf_of IS NOT NULL"),
        postgresql_where=sa.text("on_behalf_of IS NOT NULL"),
    ),
    sa.Index("ix_audit_log_at", "at"),
    sa.Index("ix_audit_log_chain_key_seq", "chain_key", "seq"),
)

# The head of every audit chain, written in the transaction that appends to the chain:
# removing a chain's newest entries, or the whole chain, leaves its anchor behind, and
# appends link to the anchor's hash, so a removal cannot be covered by the next append.
# ``mac`` signs (chain_key, last_seq, last_hash, entries) like an entry's hash does.
audit_chains = sa.Table(
    "audit_chains",
    metadata,
    sa.Column("chain_key", sa.String, primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.Column("entries", sa.BigInteger, nullable=False),
    sa.Column("key_id", sa.String(16)),
    sa.Column("mac", sa.String(64), nullable=False),
)

timers = sa.Table(
    "timers",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("instance_id", sa.String, sa.ForeignKey("instances.id"), nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("task_id", sa.String),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("data", json_type(), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("fired_at", UTCDateTime),
    sa.CheckConstraint("status IN ('pending', 'fired', 'cancelled')", name="status"),
    sa.Index("ix_timers_status_due_at_id", "status", "due_at", "id"),
    sa.Index("ix_timers_instance_id_status", "instance_id", "status"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", BigSerial, primary_key=True, autoincrement=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("event", sa.String, nullable=False),
    sa.Column("recipients", json_type(), nullable=False),
    sa.Column("instance_id", sa.String),
    sa.Column("task_id", sa.String),
    sa.Column("data", json_type(), nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("claimed_at", UTCDateTime),
    sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed')", name="status"),
    sa.Index("ix_outbox_status_id", "status", "id"),
)

# One row per (notice, recipient, channel): the unit that is sent, retried and marked, so a
# retry after a partial send reaches only those not yet reached. ``dedupe_key`` is unique,
# so expanding a notice twice (two dispatchers, or again after a recipient was added)
# cannot queue a second copy; ``delivery_id`` is the webhook-id / Message-ID, kept on retry.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", BigSerial, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(64), nullable=False, unique=True),
    sa.Column("dedupe_key", sa.String, nullable=False, unique=True),
    sa.Column("notice_id", sa.BigInteger, sa.ForeignKey("outbox.id"), nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("claimed_at", UTCDateTime),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'dead')", name="status"),
    sa.Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    sa.Index("ix_deliveries_notice_id", "notice_id"),
)

schedule_runs = sa.Table(
    "schedule_runs",
    metadata,
    sa.Column("schedule", sa.String, primary_key=True),
    sa.Column("planned_at", UTCDateTime, primary_key=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("instance_id", sa.String),
)

# API tokens (issue 11): ``shp_<id>_<secret>`` is shown once; only sha256(secret) is kept,
# so a copy of the database lets nobody call the API. A token acts as ``user_id`` within
# its ``scopes`` (a JSON list of read, act, admin) until it expires or is revoked.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("name", sa.String),
    sa.Column("scopes", json_type(), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String, nullable=False),
    sa.Column("expires_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("last_used_at", UTCDateTime),
    sa.Index("ix_api_tokens_user_id", "user_id"),
)

# The HTTP face's memory (migration 0009). Each is keyed so that a second insert of the
# same key fails: that unique key, not a read-then-write, is what makes a webhook, a link
# or an Idempotency-Key act once when two requests race.

# One row per inbound webhook delivery (Standard Webhooks ``webhook-id``) a sender made:
# a retry of the same id answers with the first result instead of acting again.
webhook_receipts = sa.Table(
    "webhook_receipts",
    metadata,
    sa.Column("sender", sa.String, primary_key=True),
    sa.Column("webhook_id", sa.String(255), primary_key=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("http_status", sa.Integer),
    sa.Column("body", json_type()),
    sa.CheckConstraint("status IN ('pending', 'done')", name="status"),
    sa.Index("ix_webhook_receipts_received_at", "received_at"),
)

# One row per action link that was used (its signed token names the row's id): a link is
# single use because the second insert of its id fails.
action_links = sa.Table(
    "action_links",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("task_id", sa.String, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("used_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("result", json_type(), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'done')", name="status"),
    sa.Index("ix_action_links_used_at", "used_at"),
)

# One row per (caller, Idempotency-Key) of a POST: the request's fingerprint, and once it
# completed with a 2xx, the response to replay. Pruned after a day.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("scope", sa.String, primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
    sa.Column("http_status", sa.Integer),
    sa.Column("headers", json_type()),
    sa.Column("body", sa.LargeBinary),
    sa.CheckConstraint("status IN ('pending', 'done')", name="status"),
    sa.Index("ix_idempotency_keys_created_at", "created_at"),
)
# Registers (engine.registers, migration 0011): a version counter per register, the
# current row per key, and every version written (what a step reads as of its pin).
registers = sa.Table(
    "registers",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)
register_rows = sa.Table(
    "register_rows",
    metadata,
    sa.Column("register", sa.String, primary_key=True),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("values", json_type(), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
register_history = sa.Table(
    "register_history",
    metadata,
    sa.Column("register", sa.String, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("key", sa.String, nullable=False),
    sa.Column("values", json_type(), nullable=False),
    sa.Column("previous", json_type()),
    sa.Column("action", sa.String, nullable=False),  # write | import
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("process", sa.String, nullable=False),
    sa.Column("instance_id", sa.String),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Index("ix_register_history_register_key_version", "register", "key", "version"),
    sa.Index("ix_register_history_register_at", "register", "at"),
)
