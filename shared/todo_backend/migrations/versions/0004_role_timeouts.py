"""statement and idle-in-transaction timeouts for the application's role in this database

Set on the role, not per connection, so they hold behind a transaction pooler (PgBouncer) too, and for
every process that connects as this role. They apply to sessions that start after the migration.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# No legitimate statement runs near this; a runaway one is cancelled instead of holding locks.
STATEMENT_TIMEOUT = "30s"
# The longest legitimate idle wait inside a transaction is a relay batch's publish, bounded by
# KAFKA_PUBLISH_TIMEOUT_SECONDS (2 s) while it holds its per-key advisory locks; a session that stalls
# much longer than that (a dead process, a hung network call) is ended so its locks and rows free up.
IDLE_IN_TRANSACTION_SESSION_TIMEOUT = "60s"

SETTINGS = {
    "statement_timeout": STATEMENT_TIMEOUT,
    "idle_in_transaction_session_timeout": IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
}


def _for_role(clause: str) -> None:
    # The role and database the URL connects as; format() quotes them, since neither is a literal here.
    op.execute(
        "DO $$ BEGIN EXECUTE format('ALTER ROLE %I IN DATABASE %I "
        + clause
        + "', current_user, current_database()); END $$"
    )


def upgrade() -> None:
    for name, value in SETTINGS.items():
        _for_role(f"SET {name} = ''{value}''")


def downgrade() -> None:
    for name in SETTINGS:
        _for_role(f"RESET {name}")
