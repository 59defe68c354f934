"""Local eventing: the part of Knative's Kafka Broker and Triggers that the local stack needs.

For each subscribing function, a consumer group of its own reads the topics its CloudEvent types live
on and POSTs each matching event (binary mode) to the function, one at a time per partition so per-task
order holds, retrying 5xx, 404, 409, 429 and connection errors with exponential backoff as Knative's
dispatcher does; other 4xx and exhausted retries go to `<topic>.dlq` with the reason as extensions.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from cloudevents.conversion import to_binary as to_http_binary
from cloudevents.kafka import KafkaMessage
from cloudevents.kafka import from_binary as from_kafka_binary

from todo_backend.catalog import DELIVERY, Function
from todo_backend.devstack.activator import Serving, always_up
from todo_backend.messaging import topic_for
from todo_backend.settings import Settings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer
    from aiokafka.structs import ConsumerRecord

log = logging.getLogger(__name__)

RETRYABLE = {404, 409, 429}


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    reason: str = ""
    status: int | None = None


async def post_event(client: httpx.AsyncClient, url: str, record: ConsumerRecord[Any, Any]) -> Outcome:
    """POST one Kafka record to `url` as a binary-mode HTTP CloudEvent, with Knative's retry policy."""
    event = from_kafka_binary(KafkaMessage(dict(record.headers), record.key, record.value))
    if isinstance(event.get("partitionkey"), bytes):
        event["partitionkey"] = event["partitionkey"].decode()
    headers, body = to_http_binary(event)
    outcome = Outcome(False)
    for attempt in range(DELIVERY.retries + 1):
        if attempt:
            await asyncio.sleep(DELIVERY.backoff_seconds * 2 ** (attempt - 1))
        try:
            response = await client.post(url, headers=headers, content=body)
        except httpx.TransportError as exc:
            outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
            continue
        if response.is_success:
            return Outcome(True, status=response.status_code)
        outcome = Outcome(False, f"HTTP {response.status_code}: {response.text[:200]}", response.status_code)
        if response.status_code < 500 and response.status_code not in RETRYABLE:
            break  # the function says this event can never succeed
    return outcome


class Subscription:
    """One function's trigger: its consumer group, its filter, its dead letters."""

    def __init__(
        self,
        fn: Function,
        url: str,
        settings: Settings,
        dead_letters: AIOKafkaProducer,
        serving: Serving = always_up,
    ) -> None:
        self.fn, self.url, self.settings, self.dead_letters = fn, url, settings, dead_letters
        self.serving = serving

    def topics(self) -> list[str]:
        return sorted({topic_for(t, self.settings) for t in self.fn.event_types})

    async def run(self) -> None:
        """Consume until cancelled; a lost broker connection restarts the consumer, not the stack."""
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: trigger consumer failed, restarting: %r", self.fn.name, exc)
                await asyncio.sleep(1.0)

    async def _consume(self) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            *self.topics(),
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=f"trigger-{self.fn.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A record that reaches the embedded broker during a fetch waits for that fetch's end:
            # aiokafka's 500 ms default made commit-to-consumer p50 about 120 ms, 100 ms makes it
            # about 30 ms (bench/commit_latency.py) for a few percent of a core while idle.
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            async with httpx.AsyncClient(timeout=30.0) as client:
                while True:
                    batches = await consumer.getmany(timeout_ms=1000)
                    # Partitions in parallel, each partition's records strictly in order.
                    await asyncio.gather(*(self.deliver(client, records) for records in batches.values()))
                    if batches:
                        await consumer.commit()
        finally:
            await consumer.stop()

    async def deliver(self, client: httpx.AsyncClient, records: list[ConsumerRecord[Any, Any]]) -> None:
        for record in records:
            ce_type = dict(record.headers).get("ce_type", b"").decode()
            if ce_type not in self.fn.event_types:
                continue  # the trigger's type filter
            # A function at zero is started for its event; one that cannot start fails the batch, which
            # is consumed again from its uncommitted offset (the activator's 503, retried).
            async with self.serving(self.fn.name):
                outcome = await post_event(client, self.url, record)
            if not outcome.delivered:
                await self._dead_letter(record, outcome)

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], outcome: Outcome) -> None:
        log.error("%s: dead-lettering %s from %s: %s", self.fn.name, record.key, record.topic, outcome.reason)
        headers = [
            *record.headers,
            ("ce_knativeerrordest", self.url.encode()),
            ("ce_knativeerrorcode", str(outcome.status or 0).encode()),
            ("ce_deadletterreason", outcome.reason.encode()),
        ]
        await self.dead_letters.send_and_wait(
            f"{record.topic}.dlq", record.value, record.key, headers=headers
        )


async def dispatch(
    subscriptions: dict[Function, str], settings: Settings, serving: Serving = always_up
) -> None:
    """Run every subscription until cancelled."""
    from aiokafka import AIOKafkaProducer

    dead_letters = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_idempotence=settings.kafka_enable_idempotence,
        acks="all",
    )
    await dead_letters.start()
    try:
        await asyncio.gather(
            *(
                Subscription(fn, url, settings, dead_letters, serving).run()
                for fn, url in subscriptions.items()
            )
        )
    finally:
        await dead_letters.stop()
