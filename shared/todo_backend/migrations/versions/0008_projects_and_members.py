"""projects shared between users: projects, members with roles, a task's project and an event's

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
ROLE = postgresql.ENUM("viewer", "editor", "admin", "owner", name="project_role")


def upgrade() -> None:
    op.create_table(
        "project",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("color", sa.Text()),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
    )
    op.create_table(
        "project_member",
        sa.Column("project_id", sa.Uuid(), sa.ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Text(), primary_key=True),
        sa.Column("role", ROLE, nullable=False),
        sa.Column("added_at", TZ, nullable=False),
    )
    op.create_index("ix_project_member_user", "project_member", ["user_id", "project_id"])
    op.create_index(
        "uq_project_member_owner",
        "project_member",
        ["project_id"],
        unique=True,
        postgresql_where=sa.text("role = 'owner'"),
    )
    op.add_column("task", sa.Column("project_id", sa.Uuid(), sa.ForeignKey("project.id")))
    op.create_index(
        "ix_task_project",
        "task",
        ["project_id", "created_at", "id"],
        postgresql_where=sa.text("project_id IS NOT NULL"),
    )
    op.add_column("task_event", sa.Column("project_id", sa.Text()))
    op.create_index("ix_task_event_subject", "task_event", ["subject", "sequence"])
    op.drop_index("ix_task_event_user_subject", table_name="task_event")
    op.create_index(
        "ix_task_event_project",
        "task_event",
        ["project_id", "sequence"],
        postgresql_where=sa.text("project_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.create_index("ix_task_event_user_subject", "task_event", ["user_id", "subject", "sequence"])
    op.drop_index("ix_task_event_subject", table_name="task_event")
    op.drop_index("ix_task_event_project", table_name="task_event")
    op.drop_column("task_event", "project_id")
    op.drop_index("ix_task_project", table_name="task")
    op.drop_column("task", "project_id")
    op.drop_table("project_member")
    op.drop_table("project")
    ROLE.drop(op.get_bind())
