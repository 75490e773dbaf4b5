"""List queries page through indexes: task_roles.due_at, keyset indexes, audit by actor.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

task_roles gains the due time of its task, so an approver's inbox is one index range
scan per role in due order; instances get an index per listing filter ending in
(created_at, id); tasks (status, due_at, id) serves the overdue list; audit_log gets
(actor, seq) and (on_behalf_of, seq) for ``audit --actor``. Written out in full, like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INSTANCE_INDEXES = {
    "ix_instances_created_at_id": ["created_at", "id"],
    "ix_instances_state_created_at_id": ["state", "created_at", "id"],
    "ix_instances_status_created_at_id": ["status", "created_at", "id"],
    "ix_instances_process_state_created_at_id": ["process", "state", "created_at", "id"],
    "ix_instances_process_status_created_at_id": ["process", "status", "created_at", "id"],
}


def upgrade() -> None:
    op.add_column("task_roles", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE task_roles SET due_at = "
        "(SELECT tasks.due_at FROM tasks WHERE tasks.id = task_roles.task_id)"
    )
    op.drop_index("ix_task_roles_role", table_name="task_roles")
    op.create_index(
        "ix_task_roles_role_due_at_task_id", "task_roles", ["role", "due_at", "task_id"]
    )

    op.drop_index("ix_tasks_status_due_at", table_name="tasks")
    op.create_index("ix_tasks_status_due_at_id", "tasks", ["status", "due_at", "id"])

    op.drop_index("ix_instances_process_status", table_name="instances")
    op.drop_index("ix_instances_process_state", table_name="instances")
    for name, columns in _INSTANCE_INDEXES.items():
        op.create_index(name, "instances", columns)

    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.create_index("ix_audit_log_actor_seq", "audit_log", ["actor", "seq"])
    op.create_index("ix_audit_log_on_behalf_of_seq", "audit_log", ["on_behalf_of", "seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_on_behalf_of_seq", table_name="audit_log")
    op.drop_index("ix_audit_log_actor_seq", table_name="audit_log")
    op.create_index("ix_audit_log_actor", "audit_log", ["actor"])

    for name in _INSTANCE_INDEXES:
        op.drop_index(name, table_name="instances")
    op.create_index("ix_instances_process_state", "instances", ["process", "state"])
    op.create_index("ix_instances_process_status", "instances", ["process", "status"])

    op.drop_index("ix_tasks_status_due_at_id", table_name="tasks")
    op.create_index("ix_tasks_status_due_at", "tasks", ["status", "due_at"])

    op.drop_index("ix_task_roles_role_due_at_task_id", table_name="task_roles")
    op.create_index("ix_task_roles_role", "task_roles", ["role"])
    with op.batch_alter_table("task_roles") as batch:
        batch.drop_column("due_at")
