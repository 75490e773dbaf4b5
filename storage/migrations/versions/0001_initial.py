"""Initial schema: definitions, instances, tasks, task_roles, audit_log, timers, outbox,
schedule_runs.

Revision ID: 0001
Revises:
Create Date: 2024-11-27

Written out in full rather than built from storage.tables, so that later changes to the
tables module cannot silently change what this revision creates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _serial() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "definitions",
        sa.Column("process", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source_hash", sa.String(64), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column("file", sa.String(), nullable=False),
        sa.Column("deployed_at", _when(), nullable=False),
        sa.Column("recorded_at", _when(), nullable=False),
        sa.Column("deployed_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("process", "version", name="pk_definitions"),
    )

    op.create_table(
        "instances",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("process", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("variables", _json(), nullable=False),
        sa.Column("requester", sa.String(), nullable=False),
        sa.Column("task_seq", sa.Integer(), nullable=False),
        sa.Column("approvers", _json(), nullable=False),
        sa.Column("meta", _json(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
        sa.Column("row_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
    )
    op.create_index("ix_instances_process_status", "instances", ["process", "status"])
    op.create_index("ix_instances_process_state", "instances", ["process", "state"])

    op.create_table(
        "tasks",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("instance_id", sa.String(), nullable=False),
        sa.Column("process", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("roles", _json(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("actions", _json(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("due_at", _when(), nullable=True),
        sa.Column("closed_at", _when(), nullable=True),
        sa.Column("decision", sa.String(), nullable=True),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("signoffs", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instances.id"], name="fk_tasks_instance_id_instances"
        ),
    )
    op.create_index("ix_tasks_instance_id_status", "tasks", ["instance_id", "status"])
    op.create_index("ix_tasks_status_due_at", "tasks", ["status", "due_at"])

    op.create_table(
        "task_roles",
        sa.Column("task_id", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "role", name="pk_task_roles"),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_task_roles_task_id_tasks", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_task_roles_role", "task_roles", ["role"])

    op.create_table(
        "audit_log",
        sa.Column("seq", _serial(), autoincrement=True, nullable=False),
        sa.Column("at", _when(), nullable=False),
        sa.Column("recorded_at", _when(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("on_behalf_of", sa.String(), nullable=True),
        sa.Column("process", sa.String(), nullable=False),
        sa.Column("instance_id", sa.String(), nullable=True),
        sa.Column("task_id", sa.String(), nullable=True),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("from_state", sa.String(), nullable=True),
        sa.Column("to_state", sa.String(), nullable=True),
        sa.Column("data", _json(), nullable=False),
        sa.Column("chain_key", sa.String(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_instance_id", "audit_log", ["instance_id"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor"])
    op.create_index("ix_audit_log_process", "audit_log", ["process"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_chain_key_seq", "audit_log", ["chain_key", "seq"])

    op.create_table(
        "timers",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("instance_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("task_id", sa.String(), nullable=True),
        sa.Column("due_at", _when(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("fired_at", _when(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_timers"),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instances.id"], name="fk_timers_instance_id_instances"
        ),
        sa.CheckConstraint("status IN ('pending', 'fired', 'cancelled')", name="ck_timers_status"),
    )
    op.create_index("ix_timers_status_due_at", "timers", ["status", "due_at"])
    op.create_index("ix_timers_instance_id_status", "timers", ["instance_id", "status"])

    op.create_table(
        "outbox",
        sa.Column("id", _serial(), autoincrement=True, nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("recipients", _json(), nullable=False),
        sa.Column("instance_id", sa.String(), nullable=True),
        sa.Column("task_id", sa.String(), nullable=True),
        sa.Column("data", _json(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", _when(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_at", _when(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed')", name="ck_outbox_status"
        ),
    )
    op.create_index("ix_outbox_status_id", "outbox", ["status", "id"])

    op.create_table(
        "schedule_runs",
        sa.Column("schedule", sa.String(), nullable=False),
        sa.Column("planned_at", _when(), nullable=False),
        sa.Column("started_at", _when(), nullable=False),
        sa.Column("instance_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("schedule", "planned_at", name="pk_schedule_runs"),
    )


def downgrade() -> None:
    for table in (
        "schedule_runs",
        "outbox",
        "timers",
        "audit_log",
        "task_roles",
        "tasks",
        "instances",
        "definitions",
    ):
        op.drop_table(table)
