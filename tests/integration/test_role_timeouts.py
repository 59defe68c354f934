"""The database guards itself: the migrations set statement and idle-in-transaction timeouts on the role."""

from __future__ import annotations

import asyncpg
from alembic.script import ScriptDirectory

from todo_backend.migrations import alembic_config


async def test_a_new_session_of_the_applications_role_has_the_migrations_timeouts(database_url: str) -> None:
    migration = ScriptDirectory.from_config(alembic_config(database_url)).get_revision("0004")
    assert migration is not None
    wanted: dict[str, str] = migration.module.SETTINGS
    # A fresh connection: role settings apply to sessions that start after the migration.
    connection = await asyncpg.connect(database_url)
    try:
        for name, value in wanted.items():
            # As intervals: SHOW normalises the unit ("60s" reads "1min").
            same = await connection.fetchval(
                "SELECT current_setting($1)::interval = CAST($2::text AS interval)", name, value
            )
            source = await connection.fetchval("SELECT source FROM pg_settings WHERE name = $1", name)
            assert (same, source) == (True, "database user"), (name, value, source)
    finally:
        await connection.close()
