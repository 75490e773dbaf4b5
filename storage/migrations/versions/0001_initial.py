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

import sqlalchemy as sa
from alembic import op

from storage.migrations.helpers import json_type, optional, required, serial, when

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STR = sa.String
_AUDIT_INDEXES = {
    "ix_audit_log_instance_id": ["instance_id"],
    "ix_audit_log_actor": ["actor"],
    "ix_audit_log_process": ["process"],
    "ix_audit_log_at": ["at"],
    "ix_audit_log_chain_key_seq": ["chain_key", "seq"],
}


def _hash() -> sa.String:
    return sa.String(64)


def upgrade() -> None:
    op.create_table(
        "definitions",
        *required(STR, "process"),
        *required(sa.Integer, "version"),
        *required(_hash, "source_hash"),
        *required(sa.Text, "source_text"),
        *required(STR, "file"),
        *required(when, "deployed_at", "recorded_at"),
        *required(STR, "deployed_by"),
        sa.PrimaryKeyConstraint("process", "version", name="pk_definitions"),
    )

    op.create_table(
        "instances",
        *required(STR, "id", "process"),
        *required(sa.Integer, "version"),
        *required(STR, "state", "status"),
        *optional(STR, "outcome"),
        *required(json_type, "variables"),
        *required(STR, "requester"),
        *required(sa.Integer, "task_seq"),
        *required(json_type, "approvers", "meta"),
        *required(when, "created_at", "updated_at"),
        *required(sa.Integer, "row_version"),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
    )
    op.create_index("ix_instances_process_status", "instances", ["process", "status"])
    op.create_index("ix_instances_process_state", "instances", ["process", "state"])

    op.create_table(
        "tasks",
        *required(STR, "id", "instance_id", "process", "name", "state"),
        *required(json_type, "roles"),
        *required(STR, "mode"),
        *required(json_type, "actions"),
        *required(STR, "status"),
        *required(when, "created_at"),
        *optional(when, "due_at", "closed_at"),
        *optional(STR, "decision", "decided_by"),
        *required(json_type, "signoffs"),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instances.id"], name="fk_tasks_instance_id_instances"
        ),
    )
    op.create_index("ix_tasks_instance_id_status", "tasks", ["instance_id", "status"])
    op.create_index("ix_tasks_status_due_at", "tasks", ["status", "due_at"])

    op.create_table(
        "task_roles",
        *required(STR, "task_id", "role"),
        sa.PrimaryKeyConstraint("task_id", "role", name="pk_task_roles"),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_task_roles_task_id_tasks", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_task_roles_role", "task_roles", ["role"])

    op.create_table(
        "audit_log",
        sa.Column("seq", serial(), autoincrement=True, nullable=False),
        *required(when, "at", "recorded_at"),
        *required(STR, "actor"),
        *optional(STR, "on_behalf_of"),
        *required(STR, "process"),
        *optional(STR, "instance_id", "task_id"),
        *required(STR, "action"),
        *optional(STR, "from_state", "to_state"),
        *required(json_type, "data"),
        *required(STR, "chain_key"),
        *required(_hash, "prev_hash", "hash"),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    for name, columns in _AUDIT_INDEXES.items():
        op.create_index(name, "audit_log", columns)

    op.create_table(
        "timers",
        *required(STR, "id", "instance_id", "kind", "state"),
        *optional(STR, "task_id"),
        *required(when, "due_at"),
        *required(STR, "status"),
        *required(json_type, "data"),
        *required(when, "created_at"),
        *optional(when, "fired_at"),
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
        sa.Column("id", serial(), autoincrement=True, nullable=False),
        *required(when, "created_at"),
        *required(STR, "event"),
        *required(json_type, "recipients"),
        *optional(STR, "instance_id", "task_id"),
        *required(json_type, "data"),
        *required(STR, "status"),
        *required(sa.Integer, "attempts"),
        *optional(when, "sent_at"),
        *optional(sa.Text, "last_error"),
        *optional(when, "claimed_at"),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed')", name="ck_outbox_status"
        ),
    )
    op.create_index("ix_outbox_status_id", "outbox", ["status", "id"])

    op.create_table(
        "schedule_runs",
        *required(STR, "schedule"),
        *required(when, "planned_at", "started_at"),
        *optional(STR, "instance_id"),
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
