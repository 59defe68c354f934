"""indexes the prune-expired-rows tick walks, oldest first, on each pruned table's timestamp

Built CONCURRENTLY, outside the migration's transaction: these are the tables that have grown without
bound until now, and a plain CREATE INDEX would block every consumer's and writer's inserts while it
builds. A build that fails leaves an invalid index behind; it is dropped before each (re)try.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name: (table, column, predicate); the predicates match retention.RULES' `only`.
INDEXES = {
    "ix_processed_event_processed_at": ("processed_event", "processed_at", None),
    "ix_idempotency_key_created_at": ("idempotency_key", "created_at", None),
    "ix_webhook_delivery_finished": ("webhook_delivery", "created_at", "status IN ('succeeded', 'failed')"),
    "ix_notification_read": ("notification", "read_at", "read_at IS NOT NULL"),
}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        # The role's statement_timeout (0004) would cancel a build over a large table.
        op.execute("SET statement_timeout = 0")
        for name, (table, column, where) in INDEXES.items():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            predicate = sa.text(where) if where else None
            op.create_index(name, table, [column], postgresql_where=predicate, postgresql_concurrently=True)
        op.execute("RESET statement_timeout")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.drop_index(name, postgresql_concurrently=True, if_exists=True)
