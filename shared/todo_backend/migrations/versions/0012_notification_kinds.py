"""notifications of assignments and memberships besides reminders

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every existing notification is a reminder's.
    op.add_column("notification", sa.Column("kind", sa.Text(), nullable=False, server_default="reminder"))
    op.add_column("notification", sa.Column("project_id", sa.Uuid()))
    op.alter_column("notification", "task_id", nullable=True)
    op.alter_column("notification", "due_at", nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM notification WHERE kind <> 'reminder'")
    op.alter_column("notification", "due_at", nullable=False)
    op.alter_column("notification", "task_id", nullable=False)
    op.drop_column("notification", "project_id")
    op.drop_column("notification", "kind")
