"""subtasks: a task's parent

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("task", sa.Column("parent_id", sa.Uuid(), sa.ForeignKey("task.id")))
    op.create_index(
        "ix_task_parent",
        "task",
        ["parent_id", "created_at", "id"],
        postgresql_where=sa.text("parent_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_task_parent", table_name="task")
    op.drop_column("task", "parent_id")
