"""Models and migrations cannot drift: a database built only by the migrations matches the models."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from todo_backend.db import async_url
from todo_backend.migrations import COMPARE, upgrade
from todo_backend.models import metadata


@pytest.fixture
def fresh_database_url(database_url: str) -> Iterator[str]:
    """A database of this test's own on the test server, migrated from empty the way `todo migrate` does.

    Not the session database: other tests may have left rows or objects there, and the point is what
    the migrations alone create."""
    name = f"todo_drift_{uuid.uuid4().hex[:12]}"
    asyncio.run(_on_server(database_url, f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        # FORCE: a connection the test failed to close must not leave the database behind.
        asyncio.run(_on_server(database_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


async def _on_server(server_url: str, statement: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


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
