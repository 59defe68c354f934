"""the outbox keeps the W3C trace context of the span that wrote each row

Two nullable columns: adding them rewrites nothing, and rows written before carry none.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("task_event", sa.Column("traceparent", sa.Text(), nullable=True))
    op.add_column("task_event", sa.Column("tracestate", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("task_event", "tracestate")
    op.drop_column("task_event", "traceparent")
