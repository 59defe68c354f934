"""The Dapr publisher adapter writes the same records as the direct publisher.

No Dapr runtime runs here, so a stand-in sidecar plays its part as docs/deploy.md sets it out from
Dapr's sources: with `rawPayload=true` the body is the record value, `partitionKey` the record key,
and every other metadata entry a header (pubsub-redpanda excludes rawPayload and partitionKey).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from todo_backend.bootstrap import unit_of_work
from todo_backend.db import get_sessionmaker
from todo_backend.derived import TaskCreate
from todo_backend.devstack.runner import free_port, wait_for_port
from todo_backend.messaging import DaprPublisher, Publisher
from todo_backend.models import TaskEvent
from todo_backend.pg import get_pool
from todo_backend.settings import Settings, get_settings
from todo_backend.task_create import CreateTask, create_task
from todo_backend.tasks import UpdateTask, update_task

EXCLUDED_FROM_HEADERS = {"rawPayload", "partitionKey"}  # dapr-components/pubsub-redpanda.yaml


def sidecar(bootstrap: str, calls: list[dict[str, Any]]) -> Starlette:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)

    async def publish(request: Request) -> Response:
        metadata = {
            k.removeprefix("metadata."): v
            for k, v in request.query_params.items()
            if k.startswith("metadata.")
        }
        calls.append({"path": request.url.path, "metadata": metadata})
        if metadata.get("rawPayload") != "true":
            return Response("the adapter must publish raw payloads", status_code=400)
        headers = [(k, v.encode()) for k, v in metadata.items() if k not in EXCLUDED_FROM_HEADERS]
        await producer.send_and_wait(
            request.path_params["topic"],
            await request.body(),
            metadata["partitionKey"].encode(),
            headers=headers,
        )
        return Response(status_code=204)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await producer.start()
        yield
        await producer.stop()

    return Starlette(
        routes=[Route("/v1.0/publish/{pubsub}/{topic}", publish, methods=["POST"])], lifespan=lifespan
    )


@pytest.fixture
async def dapr(kafka_bootstrap_servers: str) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
    calls: list[dict[str, Any]] = []
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(sidecar(kafka_bootstrap_servers, calls), "127.0.0.1", port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    await asyncio.to_thread(wait_for_port, port, 10)
    yield port, calls
    server.should_exit = True
    await serving


async def records(bootstrap: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[Any] = []
    try:
        while len(out) < count:
            for batch in (await asyncio.wait_for(consumer.getmany(timeout_ms=500), 20)).values():
                out.extend(batch)
    finally:
        await consumer.stop()
    return out


async def test_the_dapr_adapter_writes_the_records_the_direct_publisher_writes(
    database_url: str, kafka_bootstrap_servers: str, dapr: tuple[int, list[dict[str, Any]]]
) -> None:
    port, calls = dapr
    user = f"user-{uuid.uuid4()}"
    created = await create_task(
        CreateTask(user, TaskCreate(title="twice")), await get_pool(), "create-task", get_settings()
    )
    await update_task(
        UpdateTask(user, uuid.UUID(created.id), {"title": "thrice"}), unit_of_work("update-task")
    )
    async with get_sessionmaker()() as session:
        query = select(TaskEvent).where(TaskEvent.subject == created.id).order_by(TaskEvent.sequence)
        rows = list((await session.execute(query)).scalars())

    def settings(topic: str) -> Settings:
        return get_settings().model_copy(
            update={
                "kafka_bootstrap_servers": kafka_bootstrap_servers,
                "kafka_enable_idempotence": False,
                "topic_task_events": topic,
                "dapr_http_port": port,
            }
        )

    direct_topic, dapr_topic = f"direct-{uuid.uuid4().hex[:8]}", f"dapr-{uuid.uuid4().hex[:8]}"
    direct, via_dapr = Publisher(settings(direct_topic)), DaprPublisher(settings(dapr_topic))
    # Dapr creates no topics (in the cluster infra/create-topics.sh does), and nothing here auto-creates.
    await Publisher(settings(dapr_topic)).ensure_topics()
    try:
        await direct.ready()  # creates its topics, as the relay and the fast path do before publishing
        await direct.publish(rows)
        await via_dapr.publish(rows)
    finally:
        await direct.close()
        await via_dapr.close()

    assert [c["path"] for c in calls] == [f"/v1.0/publish/pubsub-redpanda/{dapr_topic}"] * 2
    expected = await records(kafka_bootstrap_servers, direct_topic, 2)
    actual = await records(kafka_bootstrap_servers, dapr_topic, 2)
    for mine, theirs in zip(actual, expected, strict=True):
        assert mine.key == theirs.key == created.id.encode()
        assert mine.value == theirs.value
        assert sorted(mine.headers) == sorted(theirs.headers)  # Dapr's header order is a Go map's
