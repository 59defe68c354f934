"""a task's assignee

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("task", sa.Column("assignee_id", sa.Text()))
    op.create_index(
        "ix_task_assignee",
        "task",
        ["assignee_id", "created_at", "id"],
        postgresql_where=sa.text("assignee_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_task_assignee", table_name="task")
    op.drop_column("task", "assignee_id")
