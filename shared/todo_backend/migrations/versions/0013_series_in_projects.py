"""recurring series in projects, with an assignee

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("recurring_task", sa.Column("project_id", sa.Uuid()))
    op.add_column("recurring_task", sa.Column("assignee_id", sa.Text()))


def downgrade() -> None:
    op.drop_column("recurring_task", "assignee_id")
    op.drop_column("recurring_task", "project_id")
