"""tasks, the task_event outbox/audit log, and idempotency keys

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    priority = postgresql.ENUM("low", "medium", "high", name="task_priority")
    op.create_table(
        "task",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("completed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("completed_at", TZ),
        sa.Column("due_date", TZ),
        sa.Column("priority", priority, nullable=False, server_default="medium"),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("remind_before_minutes", sa.Integer()),
        sa.Column("reminded_at", TZ),
        sa.Column("remind_at", TZ),
        sa.Column("recurring_task_id", sa.Uuid()),
        sa.Column("occurrence_at", TZ),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
    )
    op.create_index("ix_task_user_created", "task", ["user_id", "created_at", "id"])
    op.create_index("ix_task_user_due", "task", ["user_id", "due_date", "id"])
    op.create_index("ix_task_user_priority", "task", ["user_id", "priority", "id"])
    op.create_index("ix_task_user_title", "task", ["user_id", sa.text("lower(title)"), "id"])
    op.create_index("ix_task_tags", "task", ["tags"], postgresql_using="gin")
    op.create_index(
        "ix_task_open_reminder",
        "task",
        ["remind_at"],
        postgresql_where=sa.text("NOT completed AND reminded_at IS NULL AND remind_at IS NOT NULL"),
    )

    op.create_table(
        "task_event",
        sa.Column("sequence", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("time", TZ, nullable=False),
        sa.Column("partition_key", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=False),
        sa.Column("published_at", TZ),
    )
    op.create_index("ix_task_event_user_subject", "task_event", ["user_id", "subject", "sequence"])
    op.create_index(
        "ix_task_event_unpublished",
        "task_event",
        ["sequence"],
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_index(
        "ix_task_event_unpublished_key",
        "task_event",
        ["partition_key", "sequence"],
        postgresql_where=sa.text("published_at IS NULL"),
    )

    op.create_table(
        "idempotency_key",
        sa.Column("user_id", sa.Text(), primary_key=True),
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("response", postgresql.JSONB()),
        sa.Column("created_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("idempotency_key")
    op.drop_table("task_event")
    op.drop_table("task")
    op.execute("DROP TYPE task_priority")
