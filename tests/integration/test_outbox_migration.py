"""Migration 0007 moves the unpublished events into the outbox table, and every later insert lands there
too, whoever writes it and however (one row, many rows in one statement, COPY); the downgrade marks
published exactly the events the outbox no longer lists."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime

import asyncpg
from alembic import command

from todo_backend.migrations import alembic_config, upgrade
from todo_backend.pg import dsn

INSERT = (
    "INSERT INTO task_event (id, type, source, subject, time, partition_key, user_id, data{extra})"
    " SELECT gen_random_uuid(), 'dev.todo.task.created', '/test', k, now(), k, 'migrated', '{{}}'{value}"
    " FROM unnest($1::text[]) k"
)


async def _sql(url: str, *steps: tuple[str, object]) -> list[list[asyncpg.Record]]:
    connection = await asyncpg.connect(dsn(url))
    try:
        return [await connection.fetch(query, *([] if arg is None else [arg])) for query, arg in steps]
    finally:
        await connection.close()


class Abandoned(Exception):
    """Ends a transaction with a rollback."""


def _keys(rows: list[asyncpg.Record]) -> list[str]:
    return [row["partition_key"] for row in rows]


def test_the_outbox_takes_over_the_unpublished_events_and_gives_them_back(fresh_database_url: str) -> None:
    url = fresh_database_url
    command.downgrade(alembic_config(url), "0006")
    asyncio.run(
        _sql(
            url,
            (INSERT.format(extra=", published_at", value=", NULL::timestamptz"), ["waiting-1", "waiting-2"]),
            (INSERT.format(extra=", published_at", value=", now()"), ["published-1"]),
        )
    )

    upgrade(url)

    [moved] = asyncio.run(_sql(url, ("SELECT partition_key FROM outbox ORDER BY sequence", None)))
    assert _keys(moved) == ["waiting-1", "waiting-2"]

    async def write_every_way() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(dsn(url))
        try:
            await connection.execute(INSERT.format(extra="", value=""), ["many-1", "many-2"])
            await connection.executemany(INSERT.format(extra="", value=""), [(["each-1"],), (["each-2"],)])
            await connection.copy_records_to_table(
                "task_event",
                records=[(uuid.uuid4(), "t", "/test", "s", datetime.now(UTC), "copied", "u", "{}")],
                columns=("id", "type", "source", "subject", "time", "partition_key", "user_id", "data"),
            )
            with contextlib.suppress(Abandoned):
                async with connection.transaction():
                    await connection.execute(INSERT.format(extra="", value=""), ["rolled-back"])
                    inside = await connection.fetchval(
                        "SELECT count(*) FROM outbox WHERE partition_key = $1", "rolled-back"
                    )
                    raise Abandoned
            assert inside == 1  # listed inside the writer's transaction, and gone with it
            # Publishing one: its outbox row goes, its history stays.
            await connection.execute("DELETE FROM outbox WHERE partition_key = 'waiting-1'")
            return await connection.fetch(
                "SELECT e.partition_key, o.sequence IS NOT NULL AS listed"
                " FROM task_event e LEFT JOIN outbox o USING (sequence) ORDER BY e.sequence"
            )
        finally:
            await connection.close()

    events = asyncio.run(write_every_way())
    assert [(row["partition_key"], row["listed"]) for row in events] == [
        ("waiting-1", False),
        ("waiting-2", True),
        ("published-1", False),
        ("many-1", True),
        ("many-2", True),
        ("each-1", True),
        ("each-2", True),
        ("copied", True),
    ]

    command.downgrade(alembic_config(url), "0006")

    [unpublished] = asyncio.run(
        _sql(url, ("SELECT partition_key FROM task_event WHERE published_at IS NULL ORDER BY sequence", None))
    )
    assert _keys(unpublished) == ["waiting-2", "many-1", "many-2", "each-1", "each-2", "copied"]
