"""The outbox relay: publishes the task_event rows the outbox lists, in sequence order per partition key.

Locking: a transaction-scoped advisory lock per partition key. Whoever holds a key's lock publishes
all of that key's unpublished rows in sequence order, waits for the broker's acks, and deletes their
outbox rows in the same transaction. That wait (with a look at the broker's topics before and after),
bounded by KAFKA_PUBLISH_TIMEOUT_SECONDS, is the only network I/O inside a transaction: connecting and
creating topics (`publisher.ready()`) come before it. A publish that fails part-way still marks the
rows the broker acknowledged, so they are not published twice.
Row locks with SKIP LOCKED alone are not enough: a second relay could skip an earlier row of a key
that the first holds and publish a later one before it.
A relay that dies after the acks but before its commit leaves rows that are published again later;
consumers absorb that through their tracking rows (the event id is the same).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from operator import itemgetter

import asyncpg

from todo_backend.derived import MARK_PUBLISHED, TASK_EVENT_COLUMNS, UNPUBLISHED_OF_KEYS
from todo_backend.messaging import EventPublisher, PublishFailed
from todo_backend.stored import StoredEvent

log = logging.getLogger(__name__)


class _Row(asyncpg.Record):
    """A task_event row read by name, as the publishers read a StoredEvent: one property per column
    (a `__getattr__` runs only after a failed lookup, and made building records twice as slow)."""


for _column in ("sequence", *TASK_EVENT_COLUMNS):
    setattr(_Row, _column, property(itemgetter(_column)))


# Both publishing transactions commit without waiting for the WAL flush: a commit lost in a database
# crash only puts its rows back in the outbox, to be published again (a duplicate the consumers absorb),
# and loses none. The flush was most of a relay batch's fixed cost (bench/relay_throughput.py).
_ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"
# Each statement takes the locks of a text[] of keys; hashtextextended maps a key to a lock id.
_LOCK_KEYS = "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) k"
_TRY_LOCK_KEYS = "SELECT k FROM unnest($1::text[]) k WHERE pg_try_advisory_xact_lock(hashtextextended(k, 0))"
# The oldest waiting rows (the outbox's primary key), their keys in order.
_OLDEST_KEYS = (
    "SELECT o.partition_key FROM outbox o JOIN task_event e USING (sequence)"
    " WHERE e.time < now() - make_interval(secs => $1) ORDER BY o.sequence LIMIT $2"
)
_BACKLOG = "SELECT count(*) FROM outbox"


async def _publish_unpublished(
    conn: asyncpg.Connection, publisher: EventPublisher, keys: Sequence[str]
) -> tuple[int, PublishFailed | None]:
    """Publish and mark every unpublished row of `keys` (whose locks the caller holds). A publish that
    failed part-way is returned, not raised: the caller commits the marks of the rows that are on the
    topic, then raises it. Rows are read as plain records, `data` as the stored JSON text (sent as it
    is, never decoded and encoded again); arrays as parameters, so one prepared statement serves every
    batch."""
    rows: list[StoredEvent] = list(await conn.fetch(UNPUBLISHED_OF_KEYS, list(keys), record_class=_Row))
    failure = None
    try:
        await publisher.publish(rows)
    except PublishFailed as exc:
        rows, failure = exc.acknowledged, exc
    if rows:
        await conn.execute(MARK_PUBLISHED, [r.sequence for r in rows])
    return len(rows), failure


@contextlib.asynccontextmanager
async def _transaction(conn: asyncpg.Connection, settings: str) -> AsyncIterator[None]:
    """A transaction begun together with its SET LOCALs, in one round trip (asyncpg's transaction()
    sends BEGIN alone): a fifth of a fast-path publish's round trips (bench/create_throughput.py). It
    commits, or rolls back what raised; a connection too broken to roll back is discarded by the pool
    on release, which rolls back whatever is left open."""
    await conn.execute(f"BEGIN; {settings}")
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


async def publish_committed(pool: asyncpg.Pool, publisher: EventPublisher, keys: Sequence[str]) -> int:
    """The fast path: right after a commit, publish the unpublished rows of its partition keys (that
    commit's, and any earlier ones still waiting, so per-key order holds). Waits briefly for a key a
    relay is publishing."""
    keys = sorted(set(keys))  # sorted: a fixed lock order cannot deadlock
    await publisher.ready()  # connecting and checking topics hold no transaction or pool connection
    async with pool.acquire() as conn, _transaction(conn, f"{_ASYNC_COMMIT}; SET LOCAL lock_timeout = '2s'"):
        await conn.execute(_LOCK_KEYS, keys)
        published, failure = await _publish_unpublished(conn, publisher, keys)
    if failure is not None:
        raise failure
    return published


@dataclass(frozen=True)
class RelayResult:
    published: int
    batches: int
    backlog: int  # rows still unpublished after the tick: the outbox backlog metric


async def relay_outbox(
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    *,
    grace_seconds: float,
    batch_size: int,
    budget_seconds: float = 20.0,
) -> RelayResult:
    """One tick: publish rows older than the grace period (the fast path's window), oldest key first,
    batch after batch until none is left or the time budget is spent. Keys another relay or a fast
    path holds are skipped (pg_try_advisory_xact_lock): they are being published right now."""
    published = batches = 0
    deadline = time.monotonic() + budget_seconds
    while time.monotonic() < deadline:
        # Before each batch's transaction: a producer a failed publish closed (a broker that restarted,
        # say) is started again and the topics checked, created if they are missing.
        await publisher.ready()
        async with pool.acquire() as conn, _transaction(conn, _ASYNC_COMMIT):
            oldest = await conn.fetch(_OLDEST_KEYS, float(grace_seconds), batch_size)
            keys = list(dict.fromkeys(k for (k,) in oldest))
            if not keys:
                break
            locked = [k for (k,) in await conn.fetch(_TRY_LOCK_KEYS, keys)]
            if not locked:
                break  # every waiting key is being published by someone else
            count, failure = await _publish_unpublished(conn, publisher, locked)
        published += count
        batches += 1
        if failure is not None:
            raise failure
    backlog = int(await pool.fetchval(_BACKLOG))
    if published:
        log.info("relayed %d outbox rows in %d batches; %d left", published, batches, backlog)
    return RelayResult(published, batches, backlog)
