"""The outbox relay: publishes task_event rows to the broker, in sequence order per partition key.

Locking: a transaction-scoped advisory lock per partition key. Whoever holds a key's lock publishes
all of that key's unpublished rows in sequence order, waits for the broker's acks, and marks them
published in the same transaction. That wait (with a look at the broker's topics before and after),
bounded by KAFKA_PUBLISH_TIMEOUT_SECONDS, is the only network I/O inside a transaction: connecting and
creating topics (`publisher.ready()`) come before it. A publish that fails part-way still marks the
rows the broker acknowledged, so they are not published twice.
Row locks with SKIP LOCKED alone are not enough: a second relay could skip an earlier row of a key
that the first holds and publish a later one before it.
A relay that dies after the acks but before its commit leaves rows that are published again later;
consumers absorb that through their tracking rows (the event id is the same).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ARRAY, BigInteger, Text, any_, bindparam, cast, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from todo_backend.events import StoredEvent
from todo_backend.messaging import EventPublisher, PublishFailed
from todo_backend.models import TaskEvent

log = logging.getLogger(__name__)

# Each statement takes the locks of a text[] of keys; hashtextextended maps a key to a lock id.
_LOCK_KEYS = text("SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(CAST(:keys AS text[])) k")
_TRY_LOCK_KEYS = text(
    "SELECT k FROM unnest(CAST(:keys AS text[])) k WHERE pg_try_advisory_xact_lock(hashtextextended(k, 0))"
)
# Plain rows, not TaskEvent objects, with `data` as the stored JSON text: the record's value is that
# text as it is, never decoded and encoded again. Arrays as parameters: one statement text whatever the
# number of keys or rows, so the statement cache serves every batch.
_EVENT = TaskEvent.__table__.c
_UNPUBLISHED_OF_KEYS = (
    select(
        *(c for c in _EVENT if c.name not in ("data", "published_at")),
        cast(_EVENT.data, Text).label("data"),
    )
    .where(_EVENT.published_at.is_(None), _EVENT.partition_key == any_(bindparam("keys", type_=ARRAY(Text))))
    .order_by(_EVENT.sequence)
)
_MARK_PUBLISHED = (
    update(TaskEvent.__table__)
    .where(_EVENT.sequence == any_(bindparam("sequences", type_=ARRAY(BigInteger))))
    .values(published_at=func.now())
)


async def _publish_unpublished(
    session: AsyncSession, publisher: EventPublisher, keys: Sequence[str]
) -> tuple[int, PublishFailed | None]:
    """Publish and mark every unpublished row of `keys` (whose locks the caller holds). A publish that
    failed part-way is returned, not raised: the caller commits the marks of the rows that are on the
    topic, then raises it."""
    rows: list[StoredEvent] = list(await session.execute(_UNPUBLISHED_OF_KEYS, {"keys": list(keys)}))
    failure = None
    try:
        await publisher.publish(rows)
    except PublishFailed as exc:
        rows, failure = exc.acknowledged, exc
    if rows:
        await session.execute(_MARK_PUBLISHED, {"sequences": [r.sequence for r in rows]})
    return len(rows), failure


async def publish_committed(
    sessions: async_sessionmaker[AsyncSession], publisher: EventPublisher, rows: Sequence[TaskEvent]
) -> int:
    """The fast path: right after a commit, publish that commit's rows (and any earlier ones of the
    same keys still waiting, so per-key order holds). Waits briefly for a key a relay is publishing."""
    keys = sorted({row.partition_key for row in rows})  # sorted: a fixed lock order cannot deadlock
    await publisher.ready()  # connecting and checking topics hold no transaction or pool connection
    async with sessions() as session, session.begin():
        await session.execute(text("SET LOCAL lock_timeout = '2s'"))
        await session.execute(_LOCK_KEYS, {"keys": keys})
        published, failure = await _publish_unpublished(session, publisher, keys)
    if failure is not None:
        raise failure
    return published


@dataclass(frozen=True)
class RelayResult:
    published: int
    batches: int
    backlog: int  # rows still unpublished after the tick: the outbox backlog metric


async def relay_outbox(
    sessions: async_sessionmaker[AsyncSession],
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
        # Before each batch's transaction: a broker that restarted since the last batch is checked again.
        await publisher.ready()
        async with sessions() as session, session.begin():
            # The oldest waiting rows (the partial index on unpublished sequence), their keys in order.
            oldest = (
                select(TaskEvent.partition_key)
                .where(
                    TaskEvent.published_at.is_(None),
                    TaskEvent.time < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, grace_seconds),
                )
                .order_by(TaskEvent.sequence)
                .limit(batch_size)
            )
            keys = list(dict.fromkeys(k for (k,) in await session.execute(oldest)))
            if not keys:
                break
            locked = [k for (k,) in await session.execute(_TRY_LOCK_KEYS, {"keys": keys})]
            if not locked:
                break  # every waiting key is being published by someone else
            count, failure = await _publish_unpublished(session, publisher, locked)
        published += count
        batches += 1
        if failure is not None:
            raise failure
    async with sessions() as session:
        unpublished = select(func.count()).where(TaskEvent.published_at.is_(None))
        backlog = int((await session.execute(unpublished)).scalar_one())
    if published:
        log.info("relayed %d outbox rows in %d batches; %d left", published, batches, backlog)
    return RelayResult(published, batches, backlog)
