"""the reminder checker scans armed_reminder, a narrow table a trigger on task keeps

Claiming a reminder set task.reminded_at, a column the checker's partial index named: every claim was
an update that could not stay on its page and wrote an entry in each of the task's indexes, which made
a tick dearer as the table grew. Now the armed reminders (open, with a remind_at, not reminded since)
are rows of their own, kept by a trigger in every writer's statement; the task's pages keep room
(fillfactor 90) so that completing and reminding are HOT updates. The fillfactor applies to pages
written from now on: an existing table gets the room as it is rewritten (VACUUM FULL, pg_repack).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "armed_reminder",
        sa.Column("task_id", sa.Uuid(), sa.ForeignKey("task.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("fire_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_armed_reminder_fire_at", "armed_reminder", ["fire_at"])
    op.execute(
        """
        CREATE FUNCTION task_arms_reminder() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.remind_at IS NOT NULL AND NEW.reminded_at IS NULL AND NOT NEW.completed THEN
                INSERT INTO armed_reminder (task_id, fire_at) VALUES (NEW.id, NEW.remind_at)
                ON CONFLICT (task_id) DO UPDATE SET fire_at = excluded.fire_at;
            ELSIF TG_OP = 'UPDATE' THEN
                DELETE FROM armed_reminder WHERE task_id = NEW.id;
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER task_arms_reminder AFTER INSERT OR UPDATE OF remind_at, reminded_at, completed"
        " ON task FOR EACH ROW EXECUTE FUNCTION task_arms_reminder()"
    )
    op.execute(
        "INSERT INTO armed_reminder (task_id, fire_at) SELECT id, remind_at FROM task"
        " WHERE remind_at IS NOT NULL AND reminded_at IS NULL AND NOT completed"
    )
    op.drop_index("ix_task_open_reminder", table_name="task")
    op.execute("ALTER TABLE task SET (fillfactor = 90)")


def downgrade() -> None:
    op.execute("ALTER TABLE task RESET (fillfactor)")
    op.create_index(
        "ix_task_open_reminder",
        "task",
        ["remind_at"],
        postgresql_where=sa.text("NOT completed AND reminded_at IS NULL AND remind_at IS NOT NULL"),
    )
    op.execute("DROP TRIGGER task_arms_reminder ON task")
    op.execute("DROP FUNCTION task_arms_reminder()")
    op.drop_table("armed_reminder")
