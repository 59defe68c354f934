"""Models and migrations cannot drift: a database built only by the migrations matches the models."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import produce_migrations, render_python_code
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from todo_backend.db import async_url
from todo_backend.migrations import COMPARE
from todo_backend.models import metadata


def _compare(connection: Connection) -> str | None:
    """None when the database matches the models; else the migration autogenerate would write."""
    # As autogenerate compares (server defaults included): a default only the migrations have is a row
    # the models misdescribe.
    context = MigrationContext.configure(connection, opts=COMPARE)
    # produce_migrations runs compare_metadata; its ops render as readable op.* calls, where the raw
    # diff tuples print defaults as bare DefaultClause objects.
    ops = produce_migrations(context, metadata).upgrade_ops
    return None if ops is None or ops.is_empty() else render_python_code(ops)


async def _differences(url: str) -> str | None:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_compare)
    finally:
        await engine.dispose()


def test_a_freshly_migrated_database_has_exactly_the_schema_the_models_declare(
    fresh_database_url: str,
) -> None:
    differences = asyncio.run(_differences(fresh_database_url))
    assert differences is None, f"the models and the migrations disagree; to match the models:\n{differences}"
