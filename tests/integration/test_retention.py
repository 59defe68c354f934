"""prune-expired-rows against real PostgreSQL: what goes, what stays, the per-tick bound, racing ticks.

Rows are arranged ten years old and pruned with a ten-year retention, so no other test's rows (at most
days old) are ever expired here: every count below is exact, and the shared database is left as it was.
"""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from taskapi import Sql

from todo_backend import migrations
from todo_backend.db import get_sessionmaker
from todo_backend.fields import utcnow
from todo_backend.retention import RULES, PruneExpiredRows, PruneResult, prune_expired_rows

KEEP = timedelta(days=3650)
TABLES = tuple(RULES)


@dataclass(frozen=True)
class Owner:
    """One test's rows: its own consumer name, user id and webhook, so it counts only what it made."""

    name: str
    webhook_id: uuid.UUID


@pytest.fixture
async def owner(sql: Sql) -> AsyncIterator[Owner]:
    name = f"retention-{uuid.uuid4()}"
    webhook_id = uuid.uuid4()
    await sql.pool.execute(
        "INSERT INTO webhook (id, user_id, url, event_types, secret, created_at)"
        " VALUES ($1, $2, 'https://example.com/hook', '{dev.todo.task.created}', 'secret', now())",
        webhook_id,
        name,
    )
    yield Owner(name, webhook_id)
    await sql.pool.execute("DELETE FROM webhook WHERE id = $1", webhook_id)  # its deliveries cascade
    for table, column in [("processed_event", "consumer"), ("idempotency_key", "user_id")]:
        await sql.pool.execute(f"DELETE FROM {table} WHERE {column} = $1", name)  # noqa: S608
    await sql.pool.execute("DELETE FROM notification WHERE user_id = $1", name)


async def arrange(
    sql: Sql,
    owner: Owner,
    table: str,
    stamp: datetime,
    n: int = 1,
    *,
    status: str = "succeeded",
    read: bool = True,
) -> None:
    """`n` rows of `table` whose pruning timestamp is `stamp`."""
    statements = {
        "processed_event": "INSERT INTO processed_event (consumer, event_id, processed_at)"
        " SELECT $1, gen_random_uuid(), $2 FROM generate_series(1, $3)",
        "idempotency_key": "INSERT INTO idempotency_key (user_id, key, request_hash, created_at)"
        " SELECT $1, gen_random_uuid()::text, 'hash', $2 FROM generate_series(1, $3)",
        "webhook_delivery": "INSERT INTO webhook_delivery"
        " (id, webhook_id, user_id, event_id, event_type, payload, status, attempts, next_attempt_at,"
        " created_at)"
        " SELECT gen_random_uuid(), $4, $1, gen_random_uuid(), 'dev.todo.task.created', '{}', $5, 1,"
        " CASE WHEN $5::text = 'pending' THEN $2::timestamptz END, $2 FROM generate_series(1, $3)",
        "notification": "INSERT INTO notification"
        " (id, user_id, event_id, task_id, title, body, due_at, created_at, read_at)"
        " SELECT gen_random_uuid(), $1, gen_random_uuid(), gen_random_uuid(), 'title', 'body', $2, $2,"
        " CASE WHEN $4::boolean THEN $2::timestamptz END FROM generate_series(1, $3)",
    }
    extra: tuple[object, ...] = ()
    if table == "webhook_delivery":
        extra = (owner.webhook_id, status)
    elif table == "notification":
        extra = (read,)
    await sql.pool.execute(statements[table], owner.name, stamp, n, *extra)


async def count(sql: Sql, owner: Owner, table: str, where: str = "true") -> int:
    column = "consumer" if table == "processed_event" else "user_id"
    query = f"SELECT count(*) FROM {table} WHERE {column} = $1 AND {where}"  # noqa: S608 (test constants)
    return await sql.pool.fetchval(query, owner.name)


def command(now: datetime, **overrides: object) -> PruneExpiredRows:
    cmd = PruneExpiredRows(dict.fromkeys(TABLES, KEEP), batch_size=1000, max_rows=50_000, now=now)
    return replace(cmd, **overrides)  # type: ignore[arg-type]


async def tick(cmd: PruneExpiredRows) -> PruneResult:
    return await prune_expired_rows(cmd, get_sessionmaker())


async def test_rows_past_their_retention_go_and_everything_else_stays(sql: Sql, owner: Owner) -> None:
    now = utcnow()
    expired, young = now - KEEP - timedelta(seconds=1), now - KEEP + timedelta(seconds=1)
    for table in TABLES:
        await arrange(sql, owner, table, expired, 3)
        await arrange(sql, owner, table, young, 2)
    # Never pruned however old: deliveries still being attempted, notifications not yet read.
    await arrange(sql, owner, "webhook_delivery", expired, 4, status="pending")
    await arrange(sql, owner, "webhook_delivery", expired, 5, status="failed")
    await arrange(sql, owner, "notification", expired, 6, read=False)
    # The audit history, published and not yet published, older than anything here.
    events = await sql.pool.fetch(
        "INSERT INTO task_event (id, type, source, subject, time, partition_key, user_id, data)"
        " SELECT gen_random_uuid(), 'dev.todo.task.created', '/test', s::text, $2, s::text, $1, '{}'"
        " FROM generate_series(1, 4) i, gen_random_uuid() s RETURNING sequence, xmin::text AS xmin",
        owner.name,
        expired,
    )
    waiting = [e["sequence"] for e in events[::2]]
    await sql.pool.execute("DELETE FROM outbox WHERE sequence <> ALL($1::bigint[])", waiting)
    try:
        history = await sql.pool.fetchval("SELECT count(*) FROM task_event")

        result = await tick(command(now))

        assert result.drained
        assert result.deleted == {
            "processed_event": 3,
            "idempotency_key": 3,
            "webhook_delivery": 3 + 5,
            "notification": 3,
        }
        for table in TABLES:
            assert await count(sql, owner, table, "true") == {
                "webhook_delivery": 2 + 4,
                "notification": 2 + 6,
            }.get(table, 2), table
        assert await count(sql, owner, "webhook_delivery", "status = 'pending'") == 4
        assert await count(sql, owner, "notification", "read_at IS NULL") == 6
        assert await sql.pool.fetchval("SELECT count(*) FROM task_event") == history
        after = await sql.pool.fetch(
            "SELECT sequence, xmin::text AS xmin FROM task_event WHERE user_id = $1 ORDER BY sequence",
            owner.name,
        )
        assert [tuple(r) for r in after] == sorted(tuple(r) for r in events)  # there, and not rewritten
        assert [r["sequence"] for r in await sql.pool.fetch("SELECT sequence FROM outbox")] == waiting
    finally:
        await sql.pool.execute("DELETE FROM outbox WHERE sequence = ANY($1::bigint[])", waiting)
        await sql.pool.execute("DELETE FROM task_event WHERE user_id = $1", owner.name)


async def test_a_tick_deletes_at_most_its_cap_and_the_next_ticks_finish(sql: Sql, owner: Owner) -> None:
    now = utcnow()
    expired = now - KEEP - timedelta(hours=1)
    await arrange(sql, owner, "processed_event", expired, 2_400)
    await arrange(sql, owner, "notification", expired, 100)
    cmd = command(now, batch_size=300, max_rows=1_000)

    first = await tick(cmd)
    assert sum(first.deleted.values()) == 1_000 and not first.drained
    # Tables take turns: a backlog in one does not starve the others.
    assert first.deleted["notification"] == 100
    assert await count(sql, owner, "processed_event") == 2_400 - 900

    second, third = await tick(cmd), await tick(cmd)
    assert (sum(second.deleted.values()), second.drained) == (1_000, False)
    assert (third.deleted["processed_event"], third.drained) == (500, True)
    assert await count(sql, owner, "processed_event") == await count(sql, owner, "notification") == 0


async def test_a_tick_whose_budget_is_spent_deletes_nothing_more(sql: Sql, owner: Owner) -> None:
    now = utcnow()
    await arrange(sql, owner, "processed_event", now - KEEP - timedelta(hours=1), 10)
    result = await tick(command(now, budget_seconds=0))
    assert (result.batches, result.drained) == (0, False)
    assert await count(sql, owner, "processed_event") == 10


async def test_racing_ticks_delete_each_row_once_and_never_fail(sql: Sql, owner: Owner) -> None:
    now = utcnow()
    expired = now - KEEP - timedelta(hours=1)
    sizes = {"processed_event": 3_000, "idempotency_key": 1_000, "webhook_delivery": 600, "notification": 600}
    for table, n in sizes.items():
        await arrange(sql, owner, table, expired, n)

    # Small batches, so the four ticks' statements interleave many times over the same rows.
    results = await asyncio.gather(*(tick(command(now, batch_size=50)) for _ in range(4)))

    for table, n in sizes.items():
        assert sum(r.deleted[table] for r in results) == n, table  # a DELETE counts only rows it removed
        assert await count(sql, owner, table) == 0, table
    assert sum(r.batches for r in results) > 4 * len(sizes)  # they did overlap, batch after batch


async def test_the_function_works_as_its_own_process(
    function_process: Callable[[str], str], sql: Sql, owner: Owner
) -> None:
    """Under functions-framework over HTTP, as the PingSource calls it, with the default retention."""
    now = utcnow()
    await arrange(sql, owner, "processed_event", now - timedelta(days=31))
    await arrange(sql, owner, "processed_event", now - timedelta(days=29))
    url = await asyncio.to_thread(function_process, "prune-expired-rows")
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(url, json={"function": "prune-expired-rows"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["deleted"]) == set(TABLES) and body["deleted"]["processed_event"] >= 1
    assert await count(sql, owner, "processed_event") == 1  # the 29-day-old one stays


@pytest.mark.parametrize("table", TABLES)
async def test_each_batch_walks_its_retention_index(sql: Sql, table: str) -> None:
    """The DELETE's scan matches an index of migration 0005 (its predicate included), so a batch costs
    its own size, not the table's. Sequential scans are switched off only to ask whether the index fits."""
    path = Path(migrations.__file__).parent / "versions" / "0005_retention_indexes.py"
    spec = importlib.util.spec_from_file_location("retention_indexes", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    [index] = [name for name, (t, _, _) in migration.INDEXES.items() if t == table]
    sql_text = RULES[table].delete_batch().replace(":cutoff", "$1").replace(":limit", "$2")
    async with sql.pool.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await connection.fetch(f"EXPLAIN {sql_text}", utcnow(), 10))
    assert index in plan, plan
