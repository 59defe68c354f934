"""The one writer format: outbox rows as binary-mode CloudEvents on Kafka (ce_ headers, key = partitionkey).

aiokafka, not confluent-kafka: it is asyncio-native like the functions (no librdkafka thread pool or
callbacks to bridge), pure-Python to install, and speaks to Redpanda and the embedded Tansu alike.
It is imported only when a process first publishes, so it stays off the HTTP cold path.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from todo_backend.settings import Settings
from todo_backend.stored import StoredEvent, to_cloudevent_json

if TYPE_CHECKING:
    import httpx
    from aiokafka import AIOKafkaProducer

log = logging.getLogger(__name__)


def topic_for(event_type: str, settings: Settings) -> str:
    """Reminders have their own topic; every task and recurring-task event shares task-events."""
    if event_type.startswith("dev.todo.reminder."):
        return settings.topic_reminders
    return settings.topic_task_events


def topics(settings: Settings) -> tuple[str, ...]:
    return (settings.topic_task_events, settings.topic_reminders)


KafkaRecord = tuple[bytes, list[tuple[str, bytes]], bytes]  # key, headers, value


def to_kafka_record(row: StoredEvent) -> KafkaRecord:
    """(key, headers, value) of the binary-mode CloudEvent for an outbox row, as the CloudEvents Kafka
    binding writes it: `content-type` from datacontenttype, a `ce_` header per other attribute, the
    partitionkey as the record key, the data as the value (stored JSON text as it is). Built directly:
    the SDK's conversion took ~20 us an event; tests/unit/test_kafka_records.py holds the two equal."""
    payload = to_cloudevent_json(row)
    data = payload.pop("data")
    key = payload.pop("partitionkey").encode()
    headers = [("content-type", payload.pop("datacontenttype").encode())]
    headers += [(f"ce_{name}", value.encode()) for name, value in payload.items()]
    return key, headers, (data if isinstance(data, str) else json.dumps(data)).encode()


class PublishFailed(RuntimeError):
    """Not every row was acknowledged. `acknowledged` are the rows that were, for each key up to its first
    row that was not: they are on the topic, and publishing them again would duplicate them."""

    def __init__(self, acknowledged: list[StoredEvent]) -> None:
        super().__init__(f"{len(acknowledged)} rows acknowledged before the publish failed")
        self.acknowledged = acknowledged


def _acknowledged(sent: list[tuple[StoredEvent, asyncio.Future[Any] | None]]) -> list[StoredEvent]:
    failed: set[str] = set()  # keys with a row that was not acknowledged: their later rows wait too
    acknowledged = []
    for row, future in sent:
        if (
            row.partition_key not in failed
            and future is not None
            and future.done()
            and not future.cancelled()
            and future.exception() is None
        ):
            acknowledged.append(row)
        else:
            failed.add(row.partition_key)
    return acknowledged


async def _send(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    records: list[tuple[StoredEvent, KafkaRecord]],
    acks: dict[int, asyncio.Future[Any]],
) -> None:
    """One partition's records in as few batches as they fill, in order (aiokafka sends a partition's
    batches one after another), each row's batch ack put in `acks` (by the row's id) as its batch is
    sent, so one cut short leaves the acks of those already sent. A batch, not a send() per record:
    that cost a future, a metadata wait and a partitioner call per record (bench/relay_throughput.py)."""
    batch, rows = producer.create_batch(), list[StoredEvent]()

    async def submit() -> None:
        batch.close()  # nothing else joins it
        future = await producer.send_batch(batch, topic, partition=partition)
        acks.update((id(row), future) for row in rows)

    for row, (key, headers, value) in records:
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # full
            await submit()
            batch, rows = producer.create_batch(), []
            batch.append(key=key, value=value, timestamp=None, headers=headers)  # one always fits
        rows.append(row)
    await submit()


class TopicMismatch(RuntimeError):
    """The broker's topics disagree with KAFKA_TOPIC_PARTITIONS: publishing would put a task's events in
    partitions other than the ones its earlier events are in (or in ones nobody reads)."""


@lru_cache(maxsize=1)
def _without_topic_auto_creation() -> None:
    """aiokafka asks every metadata request to auto-create missing topics, and a broker that allows it
    (Tansu always, it has no setting for it; Kafka with auto.create.topics.enable) creates them with its
    own default partition count, not ours: Tansu's is 4. So no aiokafka client in this process asks, and
    only ensure_topics creates topics. Process-wide on purpose: a consumer's metadata refresh after a
    broker restart would auto-create them just the same."""
    import aiokafka.client
    from aiokafka.protocol.metadata import MetadataRequest

    class WithoutAutoCreation(MetadataRequest):
        def __init__(self, topics: list[str] | None = None, allow_auto_topic_creation: bool = False) -> None:
            super().__init__(topics, allow_auto_topic_creation=False)

    aiokafka.client.MetadataRequest = WithoutAutoCreation


class EventPublisher(Protocol):
    """What the relay and the fast path publish through. `ready()` does the network round trips a
    publish needs first (connecting, checking topics): call it with no transaction open, then
    `publish()` inside the transaction that marks the rows, where it only sends and waits for acks."""

    async def ensure_topics(self) -> None: ...
    async def ready(self) -> None: ...
    async def publish(self, rows: list[StoredEvent]) -> None: ...
    async def close(self) -> None: ...


def producer_settings(settings: Settings) -> dict[str, Any]:
    """The publishers' producer: every ack awaited, nothing lingering (a publish sends at once), and
    batches of up to 512 KiB, so that one publish is one batch per partition (a partition's next
    batch waits for the one before it to be sent), under the brokers' 1 MiB default message limit."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "acks": "all",
        "enable_idempotence": settings.kafka_enable_idempotence,
        "request_timeout_ms": int(settings.kafka_publish_timeout_seconds * 1000),
        "linger_ms": 0,
        "max_batch_size": 512 * 1024,
    }


class Publisher:
    """Direct to the broker: one producer per process, started on first use, re-created after a failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._ready = False  # ready() has checked the topics for this producer
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        # One bound on the wait for the lock and the start together: against a broker that accepts
        # connections and never answers, callers queued behind a start would otherwise each wait for
        # their own in turn.
        async with asyncio.timeout(self.settings.kafka_publish_timeout_seconds), self._lock:
            if self._producer is None:
                from aiokafka import AIOKafkaProducer

                _without_topic_auto_creation()
                producer = AIOKafkaProducer(**producer_settings(self.settings))
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def ensure_topics(self) -> None:
        """Create missing topics (a broker that came back empty gets them again) and refuse, with
        TopicMismatch, topics that exist with another partition count."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        _without_topic_auto_creation()
        s = self.settings
        admin = AIOKafkaAdminClient(
            bootstrap_servers=s.kafka_bootstrap_servers,
            request_timeout_ms=int(s.kafka_publish_timeout_seconds * 1000),
        )
        await asyncio.wait_for(admin.start(), s.kafka_publish_timeout_seconds)
        try:
            existing = set(await admin.list_topics())
            wanted = [*topics(s), *(f"{t}.dlq" for t in topics(s))]
            new = [
                NewTopic(name, s.kafka_topic_partitions, s.kafka_replication_factor)
                for name in wanted
                if name not in existing
            ]
            if new:
                await admin.create_topics(new)
                log.info("created topics %s", [t.name for t in new])
            described = await admin.describe_topics(list(topics(s)))
            self._check({t["topic"]: {p["partition"] for p in t["partitions"]} for t in described})
        finally:
            await admin.close()

    def _check(self, partitions: Mapping[str, set[int] | None], *, missing_ok: bool = False) -> None:
        expected = set(range(self.settings.kafka_topic_partitions))
        wrong = {
            t: len(partitions.get(t) or ())
            for t in topics(self.settings)
            if partitions.get(t) != expected and not (missing_ok and partitions.get(t) is None)
        }
        if wrong:
            raise TopicMismatch(
                f"topics {wrong} do not have KAFKA_TOPIC_PARTITIONS={len(expected)} partitions each: "
                "not publishing to them; recreate them with that many (the events wait in the outbox)"
            )

    def _cached(self, producer: AIOKafkaProducer) -> dict[str, set[int] | None]:
        """The partitions the producer will partition keys over, from its own metadata."""
        return {t: producer.client.cluster.partitions_for_topic(t) for t in topics(self.settings)}

    async def _current(self, producer: AIOKafkaProducer) -> dict[str, set[int] | None]:
        """The partitions of our topics as the broker has them now, not as the producer last saw them:
        a producer that outlived a broker restart still holds the old metadata."""
        current = await producer.client.fetch_all_metadata()
        return {t: current.partitions_for_topic(t) for t in topics(self.settings)}

    async def ready(self) -> None:
        """Start the producer, create missing topics, and bring the producer's metadata up to date: once
        per producer. After that each publish checks the topics itself, and a failed one closes the
        producer, so the next ready() checks again."""
        s = self.settings
        if self._ready:
            return
        try:
            producer = await self._started()
            async with asyncio.timeout(s.kafka_publish_timeout_seconds):
                current = await self._current(producer)
                if any(p is None for p in current.values()):
                    await self.ensure_topics()
                    current = await self._current(producer)
                self._check(current)
                if self._cached(producer) != current:
                    await producer.client.set_topics(topics(s))
                    await producer.client.force_metadata_update()
                self._check(self._cached(producer))
            self._ready = True
        except Exception:
            await self.close()  # the next attempt starts from a fresh connection
            raise

    async def publish(self, rows: list[StoredEvent]) -> None:
        """Send rows in order and wait for every ack, within KAFKA_PUBLISH_TIMEOUT_SECONDS. Raises if any
        was not acknowledged: PublishFailed when some were, which the caller marks published."""
        if not rows:
            return
        producer = await self._started()
        acks: dict[int, asyncio.Future[Any]] = {}  # by id(row)
        try:
            async with asyncio.timeout(self.settings.kafka_publish_timeout_seconds):
                # The broker's topics just before sending and again after the acks: Tansu acknowledges
                # records for a topic it does not have (a restart since ready() lost it), and may lose
                # them when the topic is created again. Kafka refuses them; the checks cost two round trips.
                self._check(await self._current(producer))
                self._check(self._cached(producer))  # the partitions the keys are spread over
                for (topic, partition), records in self._by_partition(producer, rows).items():
                    await _send(producer, topic, partition, records, acks)
                # wait(), unlike gather(), never cancels what it waits for: after a timeout the acks still
                # settle in close(), and what the broker acknowledged counts.
                await asyncio.wait(set(acks.values()))
                for future in acks.values():
                    future.result()  # a batch that failed
                # A metadata refresh during the sends that saw other partitions: the acks may be for
                # records nobody reads, so the rows stay unpublished.
                self._check(self._cached(producer))
                self._check(await self._current(producer))
        except Exception as exc:
            # Closing flushes what is still in flight: once it returns, every send has been acknowledged
            # or has failed, so what was acknowledged after the timeout is not published a second time.
            await self.close()
            sent = [(row, acks.get(id(row))) for row in rows]  # in row order: per key; None: never sent
            acknowledged = [] if isinstance(exc, TopicMismatch) else _acknowledged(sent)
            if acknowledged:
                raise PublishFailed(acknowledged) from exc
            raise

    def _by_partition(
        self, producer: AIOKafkaProducer, rows: list[StoredEvent]
    ) -> dict[tuple[str, int], list[tuple[StoredEvent, KafkaRecord]]]:
        """The rows' records by the partition each goes to, in row order: the partition the producer's
        own partitioner gives the key (murmur2, as Kafka's Java client), so a key's records land where
        they always did."""
        from aiokafka.partitioner import DefaultPartitioner

        cluster, partitioner = producer.client.cluster, DefaultPartitioner()
        grouped: dict[tuple[str, int], list[tuple[StoredEvent, KafkaRecord]]] = {}
        chosen: dict[tuple[str, bytes], int] = {}  # a key's events usually come together
        for row in rows:
            record = to_kafka_record(row)
            topic, key = topic_for(row.type, self.settings), record[0]
            if (topic, key) not in chosen:
                every = list(cluster.partitions_for_topic(topic) or ())
                chosen[topic, key] = partitioner(
                    key, every, list(cluster.available_partitions_for_topic(topic))
                )
            grouped.setdefault((topic, chosen[topic, key]), []).append((row, record))
        return grouped

    async def close(self) -> None:
        async with self._lock:
            producer, self._producer, self._ready = self._producer, None, False
        if producer is not None:
            await producer.stop()


class DaprPublisher:
    """Publishes through the Dapr sidecar's pub/sub API (component `pubsub.kafka`) records equal to the
    direct publisher's: `rawPayload` makes the body the record value, `partitionKey` the record key,
    and every other metadata entry a header (the component excludes rawPayload and partitionKey from
    the headers). All or nothing: Dapr's producer partitions keys with FNV-1a, the direct one with
    murmur2, so one topic written by both would not keep a task's events in order. docs/deploy.md.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: httpx.AsyncClient | None = None

    async def ensure_topics(self) -> None:
        """Dapr cannot create topics: in the cluster infra/create-topics.sh does."""

    async def ready(self) -> None:
        """Nothing to connect first: the sidecar is local, and publishing through it checks nothing."""

    async def publish(self, rows: list[StoredEvent]) -> None:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{self.settings.dapr_http_port}",
                timeout=self.settings.kafka_publish_timeout_seconds * 2,
            )
        for row in rows:  # one at a time: each publish returns once the broker acknowledged it
            key, headers, value = to_kafka_record(row)
            metadata = {"rawPayload": "true", "partitionKey": key.decode()}
            metadata.update((name, raw.decode()) for name, raw in headers)
            topic = topic_for(row.type, self.settings)
            response = await self._client.post(
                f"/v1.0/publish/{self.settings.dapr_pubsub_name}/{topic}",
                params={f"metadata.{k}": v for k, v in metadata.items()},
                content=value,
                headers={"Content-Type": "application/json"},
            )
            response.raise_for_status()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
