"""`make events`: tail every topic and print each CloudEvent as it arrives."""

from __future__ import annotations

import asyncio
import json

from cloudevents.kafka import KafkaMessage, from_binary

from todo_backend.messaging import topics
from todo_backend.settings import Settings


def describe(topic: str, headers: dict[str, bytes], key: bytes | None, value: bytes) -> str:
    event = from_binary(KafkaMessage(headers, key, value))
    extra = {k: headers[k].decode() for k in ("ce_deadletterreason",) if k in headers}
    return "  ".join(
        [
            str(event.get("time")),
            topic,
            str(event["type"]),
            f"subject={event.get('subject')}",
            f"id={event['id']}",
            *(f"{k[3:]}={v}" for k, v in extra.items()),
            json.dumps(event.get_data(), separators=(",", ":")),
        ]
    )


async def tail(settings: Settings, from_beginning: bool) -> None:
    from aiokafka import AIOKafkaConsumer

    names = [*topics(settings), *(f"{t}.dlq" for t in topics(settings))]
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async for record in consumer:
            print(describe(record.topic, dict(record.headers), record.key, record.value), flush=True)
    finally:
        await consumer.stop()


def main(settings: Settings, from_beginning: bool) -> None:
    try:
        asyncio.run(tail(settings, from_beginning))
    except KeyboardInterrupt:
        pass
