"""The relay's and the fast path's transactions (relay._transaction: BEGIN with its settings in one
round trip) end whatever happens inside them: a publish that raises leaves no transaction open on a
pooled connection, no key locked, and the rows in the outbox for the next try."""

from __future__ import annotations

import uuid

import pytest
from taskapi import Api, Sql

from todo_backend import pg
from todo_backend.relay import publish_committed, relay_outbox
from todo_backend.stored import StoredEvent


class Exploding:
    """A publisher whose every publish fails with something that is not PublishFailed."""

    async def ensure_topics(self) -> None:
        pass

    async def ready(self) -> None:
        pass

    async def publish(self, rows: list[StoredEvent]) -> None:
        raise RuntimeError("the broker client broke")

    async def close(self) -> None:
        pass


async def assert_left_clean(sql: Sql, key: str) -> None:
    stuck = await sql.pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND state LIKE 'idle in transaction%'"
    )
    assert stuck == 0  # no pooled connection kept a transaction (or its locks) open
    async with sql.pool.acquire() as other, other.transaction():
        assert await other.fetchval("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", key)
    assert await sql.pool.fetchval("SELECT count(*) FROM outbox WHERE partition_key = $1", key) == 1


async def test_a_fast_path_publish_that_raises_ends_its_transaction(alice: Api, sql: Sql) -> None:
    task = await alice.create(title="t")

    with pytest.raises(RuntimeError):
        await publish_committed(await pg.get_pool(), Exploding(), [task["id"]])

    await assert_left_clean(sql, task["id"])


async def test_a_relay_batch_that_raises_ends_its_transaction(alice: Api, sql: Sql) -> None:
    task = await alice.create(title=f"t-{uuid.uuid4()}")

    with pytest.raises(RuntimeError):
        await relay_outbox(await pg.get_pool(), Exploding(), grace_seconds=0, batch_size=10_000)

    await assert_left_clean(sql, task["id"])
