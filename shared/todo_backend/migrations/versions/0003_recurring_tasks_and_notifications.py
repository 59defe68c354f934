"""recurring tasks, the unique occurrence key, and in-app notifications

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    anchor = postgresql.ENUM("schedule", "completion", name="recurrence_anchor")
    priority = postgresql.ENUM("low", "medium", "high", name="task_priority", create_type=False)
    op.create_table(
        "recurring_task",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("priority", priority, nullable=False, server_default="medium"),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("remind_before_minutes", sa.Integer()),
        sa.Column("schedule", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("anchor", anchor, nullable=False),
        sa.Column("starts_at", TZ, nullable=False),
        sa.Column("until", TZ),
        sa.Column("max_occurrences", sa.Integer()),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("occurrences_created", sa.Integer(), nullable=False),
        sa.Column("occurrences_skipped", sa.Integer(), nullable=False),
        sa.Column("next_occurrence_at", TZ),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_recurring_task_user_created", "recurring_task", ["user_id", "created_at", "id"])
    op.create_index(
        "ix_recurring_task_due",
        "recurring_task",
        ["next_occurrence_at"],
        postgresql_where=sa.text("NOT paused AND anchor = 'schedule' AND next_occurrence_at IS NOT NULL"),
    )
    op.create_index("uq_task_occurrence", "task", ["recurring_task_id", "occurrence_at"], unique=True)
    op.create_table(
        "notification",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("due_at", TZ, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("read_at", TZ),
    )
    op.create_index("ix_notification_user_created", "notification", ["user_id", "created_at", "id"])
    op.create_index(
        "ix_notification_user_unread",
        "notification",
        ["user_id", "created_at", "id"],
        postgresql_where=sa.text("read_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("notification")
    op.drop_index("uq_task_occurrence", "task")
    op.drop_table("recurring_task")
    op.execute("DROP TYPE recurrence_anchor")
