"""the outbox is a narrow table of the events not yet published, filled by a trigger on task_event

Marking a batch published set each event row's `published_at`, which writes a new version of the wide
row and entries in its three indexes: half the relay's database time. Now publishing deletes the
`outbox` rows (sequence, partition_key), and task_event is written once. The trigger lists every new
event in the outbox in the statement that inserts it, so no writer can forget to; rows still unpublished
at the upgrade move across.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("sequence", sa.BigInteger(), sa.ForeignKey("task_event.sequence"), primary_key=True),
        sa.Column("partition_key", sa.Text(), nullable=False),
    )
    op.create_index("ix_outbox_partition_key", "outbox", ["partition_key", "sequence"])
    # One insert per statement (a transition table), not one per row: an executemany of N events is
    # N statements, a multi-row INSERT or COPY is one.
    op.execute(
        """
        CREATE FUNCTION task_event_to_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO outbox (sequence, partition_key) SELECT sequence, partition_key FROM inserted;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER task_event_to_outbox AFTER INSERT ON task_event REFERENCING NEW TABLE AS inserted"
        " FOR EACH STATEMENT EXECUTE FUNCTION task_event_to_outbox()"
    )
    op.execute(
        "INSERT INTO outbox (sequence, partition_key)"
        " SELECT sequence, partition_key FROM task_event WHERE published_at IS NULL"
    )
    op.drop_index("ix_task_event_unpublished_key", table_name="task_event")
    op.drop_index("ix_task_event_unpublished", table_name="task_event")
    op.drop_column("task_event", "published_at")


def downgrade() -> None:
    op.add_column("task_event", sa.Column("published_at", TZ))
    op.execute(
        "UPDATE task_event SET published_at = now()"
        " WHERE NOT EXISTS (SELECT FROM outbox WHERE outbox.sequence = task_event.sequence)"
    )
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
    op.execute("DROP TRIGGER task_event_to_outbox ON task_event")
    op.execute("DROP FUNCTION task_event_to_outbox()")
    op.drop_table("outbox")
