"""The one writer format: outbox rows as binary-mode CloudEvents on Kafka (ce_ headers, key = partitionkey).

aiokafka, not confluent-kafka: it is asyncio-native like the functions (no librdkafka thread pool or
callbacks to bridge), pure-Python to install, and speaks to Redpanda and the embedded Tansu alike.
It is imported only when a process first publishes, so it stays off the HTTP cold path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from todo_backend.events import to_cloudevent_json
from todo_backend.models import TaskEvent
from todo_backend.settings import Settings

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


def to_kafka_record(row: TaskEvent) -> tuple[Any, list[tuple[str, bytes]], Any]:
    """(key, headers, value) of the binary-mode CloudEvent for an outbox row, via the SDK's Kafka binding."""
    from cloudevents.http import CloudEvent
    from cloudevents.kafka import to_binary

    payload = to_cloudevent_json(row)
    event = CloudEvent(payload, payload.pop("data"))
    message = to_binary(event, key_mapper=lambda e: e["partitionkey"].encode())
    return message.key, list(message.headers.items()), message.value


class EventPublisher(Protocol):
    """What the relay and the fast path publish through."""

    async def ensure_topics(self) -> None: ...
    async def publish(self, rows: list[TaskEvent]) -> None: ...
    async def close(self) -> None: ...


class Publisher:
    """Direct to the broker: one producer per process, started on first use, re-created after a failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                from aiokafka import AIOKafkaProducer

                s = self.settings
                producer = AIOKafkaProducer(
                    bootstrap_servers=s.kafka_bootstrap_servers,
                    acks="all",
                    enable_idempotence=s.kafka_enable_idempotence,
                    request_timeout_ms=int(s.kafka_publish_timeout_seconds * 1000),
                    linger_ms=0,
                )
                try:
                    await asyncio.wait_for(producer.start(), s.kafka_publish_timeout_seconds)
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def ensure_topics(self) -> None:
        """Create missing topics: a broker that came back empty gets them again."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        s = self.settings
        admin = AIOKafkaAdminClient(
            bootstrap_servers=s.kafka_bootstrap_servers,
            request_timeout_ms=int(s.kafka_publish_timeout_seconds * 1000),
        )
        await asyncio.wait_for(admin.start(), s.kafka_publish_timeout_seconds)
        try:
            existing = set(await admin.list_topics())
            wanted = [t for t in topics(s) if t not in existing]
            dead_letters = [f"{t}.dlq" for t in topics(s) if f"{t}.dlq" not in existing]
            new = [
                NewTopic(name, s.kafka_topic_partitions, s.kafka_replication_factor)
                for name in wanted + dead_letters
            ]
            if new:
                await admin.create_topics(new)
                log.info("created topics %s", [t.name for t in new])
        finally:
            await admin.close()

    async def publish(self, rows: list[TaskEvent]) -> None:
        """Send rows in order and wait for every ack; raises if any was not acknowledged."""
        if not rows:
            return
        producer = await self._started()
        try:
            futures = [
                await producer.send(topic_for(row.type, self.settings), value, key, headers=headers)
                for row in rows
                for key, headers, value in (to_kafka_record(row),)
            ]
            await asyncio.wait_for(asyncio.gather(*futures), self.settings.kafka_publish_timeout_seconds * 2)
        except Exception:
            await self.close()  # the next publish starts from a fresh connection
            raise

    async def close(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
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

    async def publish(self, rows: list[TaskEvent]) -> None:
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
