"""A publish that times out part-way reports exactly the rows the broker acknowledged, so the caller marks
those published and no others: none is published twice, none skipped ahead of an earlier one of its key.
The producer here is a stand-in that fills batches of two records and acknowledges when told to."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from todo_backend.messaging import Publisher, PublishFailed
from todo_backend.settings import Settings

TOPIC = "task-events"


class Batch:
    def __init__(self) -> None:
        self.records: list[Any] = []
        self.closed = False

    def append(self, **record: Any) -> object | None:
        if self.closed or len(self.records) == 2:
            return None
        self.records.append(record)
        return object()

    def close(self) -> None:
        self.closed = True


class Producer:
    """One partition. send_batch hangs on the batch numbered `hang_at`; acks settle as `ack()` says."""

    def __init__(self, hang_at: int | None = None) -> None:
        self.hang_at, self.acks = hang_at, list[asyncio.Future[None]]()
        partitions = {0}
        cluster = SimpleNamespace(
            partitions_for_topic=lambda topic: partitions,
            available_partitions_for_topic=lambda topic: partitions,
        )
        self.client = SimpleNamespace(cluster=cluster, fetch_all_metadata=self._metadata)
        self.settle_on_stop: list[asyncio.Future[None]] = []

    async def _metadata(self) -> Any:
        return self.client.cluster

    def create_batch(self) -> Batch:
        return Batch()

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> asyncio.Future[None]:
        assert batch.closed
        if len(self.acks) == self.hang_at:
            await asyncio.Event().wait()  # never sent: the broker does not take it
        future = asyncio.get_running_loop().create_future()
        self.acks.append(future)
        return future

    async def stop(self) -> None:  # closing flushes: what was in flight is acknowledged now
        for future in self.settle_on_stop:
            future.set_result(None)


def rows(keys: list[str]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(
            sequence=n, id=uuid.uuid4(), type="dev.todo.task.updated", source="/t", subject=key,
            time=datetime.now(UTC), partition_key=key, user_id="u", data="{}", project_id=None,
            traceparent=None, tracestate=None,
        )
        for n, key in enumerate(keys, start=1)
    ]  # fmt: skip


def publisher(producer: Producer) -> Publisher:
    settings = Settings(
        database_url="postgresql://x/y",
        jwt_secret="s" * 40,
        kafka_publish_timeout_seconds=0.2,
        kafka_topic_partitions=1,
        topic_task_events=TOPIC,
    )
    p = Publisher(settings)
    p._producer, p._ready = producer, True  # type: ignore[assignment]
    return p


async def test_a_batch_that_never_went_out_leaves_the_earlier_batches_acknowledged() -> None:
    producer = Producer(hang_at=1)  # the second batch of the partition hangs
    stored = rows(["a", "b", "a", "c"])  # batch 1: a, b; batch 2: a, c
    publishing = asyncio.create_task(publisher(producer).publish(stored))
    async with asyncio.timeout(5):
        while not producer.acks:  # noqa: ASYNC110 (the stand-in has nothing to wait on)
            await asyncio.sleep(0)
    producer.acks[0].set_result(None)

    with pytest.raises(PublishFailed) as failed:
        async with asyncio.timeout(5):  # a publish that hangs fails the test
            await publishing

    assert [row.sequence for row in failed.value.acknowledged] == [1, 2]


async def test_acks_that_settle_while_the_producer_closes_still_count() -> None:
    producer = Producer()
    stored = rows(["a", "b", "a"])  # batch 1: a, b (acknowledged late); batch 2: a (never)
    publishing = asyncio.create_task(publisher(producer).publish(stored))
    async with asyncio.timeout(5):
        while len(producer.acks) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0)
    producer.settle_on_stop.append(producer.acks[0])  # the timeout fires first; close() flushes it

    with pytest.raises(PublishFailed) as failed:
        async with asyncio.timeout(5):  # a publish that hangs fails the test
            await publishing

    assert [row.sequence for row in failed.value.acknowledged] == [1, 2]
    assert not producer.acks[1].done()  # the other stays in flight, and its row stays unpublished
