"""The outbox reaches the real broker as binary-mode CloudEvents; consumers are idempotent; the local
dispatcher retries and dead-letters. Real PostgreSQL, real Kafka-API broker (embedded Tansu)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cloudevents.http import CloudEvent
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from todo_backend.bootstrap import publish_now, unit_of_work
from todo_backend.catalog import Function
from todo_backend.consumers import InboundEvent, consume, receive
from todo_backend.db import get_sessionmaker
from todo_backend.derived import TaskCreate
from todo_backend.devstack.broker import EmbeddedBroker
from todo_backend.devstack.dispatcher import Subscription, post_event
from todo_backend.errors import PoisonEvent
from todo_backend.events import TaskCreated, task_json
from todo_backend.messaging import Publisher, to_kafka_record
from todo_backend.models import ProcessedEvent, Task, TaskEvent
from todo_backend.pg import get_pool
from todo_backend.relay import relay_outbox
from todo_backend.settings import Settings, get_settings
from todo_backend.task_create import Created, CreateTask
from todo_backend.task_create import create_task as create
from todo_backend.tasks import (
    CompleteTask,
    DeleteTask,
    UpdateTask,
    complete_task,
    delete_task,
    update_task,
)
from todo_backend.uow import UnitOfWork


@pytest.fixture
def settings(database_url: str, kafka_bootstrap_servers: str) -> Settings:
    # Each test gets its own topics, so what it reads is only what it wrote.
    suffix = uuid.uuid4().hex[:8]
    return get_settings().model_copy(
        update={
            "kafka_bootstrap_servers": kafka_bootstrap_servers,
            "kafka_enable_idempotence": False,
            "kafka_topic_partitions": 3,
            "topic_task_events": f"task-events-{suffix}",
            "topic_reminders": f"reminders-{suffix}",
            "relay_grace_seconds": 0.0,
        }
    )


@pytest.fixture
async def publisher(settings: Settings) -> AsyncIterator[Publisher]:
    p = Publisher(settings)
    yield p
    await p.close()


async def read_topic(settings: Settings, topic: str, expected: int, wait_seconds: float = 20.0) -> list[Any]:
    """Every record on `topic` from the beginning, once at least `expected` arrived (or the timeout)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        # Anything beyond `expected` would be a duplicate: give it a moment to show up.
        for batch in (await consumer.getmany(timeout_ms=1000)).values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def create_task(user: str, title: str) -> Created:
    return await create(
        CreateTask(user, TaskCreate(title=title)), await get_pool(), "create-task", get_settings()
    )


async def a_task_lifecycle(user: str) -> uuid.UUID:
    """Create, update, complete and delete one task: four committed changes, four outbox rows."""
    task_id = uuid.UUID((await create_task(user, "write tests")).id)
    await update_task(UpdateTask(user, task_id, {"title": "write more tests"}), unit_of_work("update-task"))
    await complete_task(CompleteTask(user, task_id), unit_of_work("complete-task"))
    await delete_task(DeleteTask(user, task_id), unit_of_work("delete-task"))
    return task_id


async def rows_of(task_id: uuid.UUID) -> list[TaskEvent]:
    async with get_sessionmaker()() as session:
        query = select(TaskEvent).where(TaskEvent.subject == str(task_id)).order_by(TaskEvent.sequence)
        return list((await session.execute(query)).scalars())


async def waiting(task_id: uuid.UUID) -> int:
    """How many of the task's events the outbox still lists."""
    pool = await get_pool()
    query = "SELECT count(*) FROM outbox JOIN task_event USING (sequence) WHERE subject = $1"
    return int(await pool.fetchval(query, str(task_id)))


async def relay(settings: Settings, publisher: Publisher) -> int:
    result = await relay_outbox(await get_pool(), publisher, grace_seconds=0.0, batch_size=100)
    return result.published


async def test_every_committed_change_appears_once_on_its_topic_as_a_binary_mode_cloudevent(
    settings: Settings, publisher: Publisher
) -> None:
    task_id = await a_task_lifecycle(f"user-{uuid.uuid4()}")
    assert await relay(settings, publisher) >= 4

    records = [
        r for r in await read_topic(settings, settings.topic_task_events, 4) if r.key == str(task_id).encode()
    ]
    types = [dict(r.headers)["ce_type"].decode() for r in records]
    assert types == [
        "dev.todo.task.created",
        "dev.todo.task.updated",
        "dev.todo.task.completed",
        "dev.todo.task.deleted",
    ]
    stored = await rows_of(task_id)
    assert [dict(r.headers)["ce_id"].decode() for r in records] == [str(row.id) for row in stored]
    assert await waiting(task_id) == 0
    headers = dict(records[0].headers)
    assert headers["content-type"] == b"application/json"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_source"] == b"/functions/create-task"
    assert headers["ce_subject"] == str(task_id).encode()
    assert headers["ce_userid"] == stored[0].user_id.encode()
    assert b"ce_partitionkey" not in headers  # the binding carries it as the record key
    assert records[0].value == to_kafka_record(stored[0])[2]


async def test_rows_past_one_batch_arrive_whole_in_order_and_once(
    settings: Settings, publisher: Publisher
) -> None:
    """A publish whose rows for one partition overflow the producer's batch goes out in several batches,
    one after another: every row, in its order, none twice."""
    await publisher.ensure_topics()
    await publisher.ready()
    keys = [str(uuid.uuid4()) for _ in range(2)]
    padding = json.dumps({"padding": "x" * 100_000})  # a dozen rows of a key fill two 512 KiB batches
    rows = [
        SimpleNamespace(
            sequence=n, id=uuid.uuid4(), type="dev.todo.task.updated", source="/test", subject=key,
            time=datetime.now(UTC), partition_key=key, user_id="u", data=padding, project_id=None,
            traceparent=None, tracestate=None,
        )
        for n, key in enumerate(keys * 12, start=1)
    ]  # fmt: skip
    await publisher.publish(rows)

    records = await read_topic(settings, settings.topic_task_events, len(rows))
    for key in keys:
        sent = [int(dict(r.headers)["ce_sequence"]) for r in records if r.key == key.encode()]
        assert sent == [row.sequence for row in rows if row.partition_key == key]


async def test_a_second_relay_tick_publishes_nothing_again(settings: Settings, publisher: Publisher) -> None:
    await a_task_lifecycle(f"user-{uuid.uuid4()}")
    assert await relay(settings, publisher) >= 4
    assert await relay(settings, publisher) == 0


async def test_the_fast_path_publishes_a_commit_without_the_relay(
    settings: Settings, publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("todo_backend.bootstrap.get_publisher", lambda: publisher)
    created = await create_task(f"user-{uuid.uuid4()}", "fast")
    await publish_now([created.id])

    records = await read_topic(settings, settings.topic_task_events, 1)
    assert [dict(r.headers)["ce_subject"].decode() for r in records] == [created.id]
    assert await waiting(uuid.UUID(created.id)) == 0


async def test_two_relays_racing_publish_each_event_once_in_per_task_order(settings: Settings) -> None:
    task_ids = await asyncio.gather(*(a_task_lifecycle(f"user-{uuid.uuid4()}") for _ in range(25)))
    first, second = Publisher(settings), Publisher(settings)
    try:
        await asyncio.gather(relay(settings, first), relay(settings, second))
    finally:
        await first.close()
        await second.close()

    records = await read_topic(settings, settings.topic_task_events, 100)
    ids = [dict(r.headers)["ce_id"] for r in records]
    assert len(ids) == len(set(ids))  # no event published twice
    for task_id in task_ids:  # and every one of ours published, in order
        mine = [r for r in records if r.key == str(task_id).encode()]
        assert [dict(r.headers)["ce_type"].split(b".")[-1] for r in mine] == [
            b"created",
            b"updated",
            b"completed",
            b"deleted",
        ]


async def test_with_the_broker_down_requests_succeed_and_nothing_is_lost_once_it_is_back(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    outage = EmbeddedBroker()  # a broker of its own, to stop and start again (empty, as Tansu comes back)
    down = settings.model_copy(
        update={"kafka_bootstrap_servers": outage.bootstrap_servers, "kafka_publish_timeout_seconds": 0.5}
    )
    publisher = Publisher(down)
    monkeypatch.setattr("todo_backend.bootstrap.get_publisher", lambda: publisher)
    user = f"user-{uuid.uuid4()}"

    async def change() -> uuid.UUID:
        created = await create_task(user, "during an outage")
        await publish_now([created.id])
        task_id = uuid.UUID(created.id)
        uow = unit_of_work("update-task")
        await update_task(UpdateTask(user, task_id, {"priority": "high"}), uow)
        await publish_now([row.partition_key for row in uow.committed])
        return task_id

    try:
        outage.start()
        await publisher.ensure_topics()
        before = await change()
        assert await waiting(before) == 0

        outage.stop()
        during = [await change() for _ in range(3)]  # each publish fails quietly; the requests succeed
        rows = [row for task_id in during for row in await rows_of(task_id)]
        assert len(rows) == 6 and sum([await waiting(task_id) for task_id in during]) == 6

        outage.start()  # back, and empty: the relay creates the topics again
        # Other tests' rows wait in the same outbox: count only ours.
        assert await relay(down, publisher) >= 6
        keys = {str(t).encode() for t in during}
        records = [r for r in await read_topic(down, down.topic_task_events, 6) if r.key in keys]
        assert len(records) == 6
        for task_id in during:
            mine = [dict(r.headers)["ce_type"] for r in records if r.key == str(task_id).encode()]
            assert mine == [b"dev.todo.task.created", b"dev.todo.task.updated"]
    finally:
        await publisher.close()
        outage.stop()


# --- consumers --------------------------------------------------------------------------------------


CREATED = Function("test-consumer", "test", event_types=("dev.todo.task.created",))


def an_event(
    user: str, title: str, event_type: str = "dev.todo.task.created", task_id: uuid.UUID | None = None
) -> CloudEvent:
    """A task event, as create-task emits it (about a task not in the database, unless `task_id` is)."""
    task = Task(id=task_id or uuid.uuid4(), user_id=user, title=title)
    return CloudEvent(
        {
            "type": event_type,
            "source": "/functions/create-task",
            "subject": str(task.id),
            "userid": user,
            "partitionkey": str(task.id),
            "datacontenttype": "application/json",
        },
        {"task": task_json(task)},
    )


async def make_task(event: InboundEvent, uow: UnitOfWork) -> uuid.UUID:
    """Insert the event's copy of its task, under a fresh id: the effect a redelivery must not repeat."""
    assert isinstance(event.event, TaskCreated)
    task = Task(user_id=event.user_id, title=event.event.task.title)
    uow.session.add(task)
    return task.id


async def count_tasks(user: str) -> int:
    async with get_sessionmaker()() as session:
        return int((await session.execute(select(func.count()).where(Task.user_id == user))).scalar_one())


async def test_the_same_event_delivered_twice_has_its_effect_once(database_url: str) -> None:
    user = f"user-{uuid.uuid4()}"
    event = receive(CREATED, an_event(user, "once"))
    first = await consume("test-consumer", event, make_task)
    again = await consume("test-consumer", event, make_task)
    assert first is not None and again is None
    assert await count_tasks(user) == 1
    # Tracking is per consumer: another consumer still handles the same event.
    assert await consume("another-consumer", event, make_task) is not None
    assert await count_tasks(user) == 2


async def test_a_failed_effect_leaves_no_tracking_row_so_the_retry_runs_it(database_url: str) -> None:
    user = f"user-{uuid.uuid4()}"
    event = receive(CREATED, an_event(user, "retry me"))

    async def flaky(event: InboundEvent, uow: UnitOfWork) -> None:
        await make_task(event, uow)
        raise ConnectionError("database went away")

    with pytest.raises(ConnectionError):
        await consume("test-consumer", event, flaky)
    assert await count_tasks(user) == 0
    assert await consume("test-consumer", event, make_task) is not None
    assert await count_tasks(user) == 1


@pytest.mark.parametrize(
    "event",
    [
        an_event("u", "x", "dev.todo.task.completed"),  # a type the consumer does not take
        an_event("u", "x", "dev.todo.task.exploded"),  # a type nobody emits
        CloudEvent(
            {"type": "dev.todo.task.created", "source": "/x"}, an_event("u", "x").get_data()
        ),  # no userid
        CloudEvent(an_event("u", "x").get_attributes(), {"title": "x"}),  # data that is not a task's
    ],
    ids=["not-taken", "unknown-type", "no-userid", "not-a-task"],
)
def test_an_event_that_can_never_succeed_is_a_poison_event(event: CloudEvent) -> None:
    with pytest.raises(PoisonEvent):
        receive(CREATED, event)


async def test_an_event_naming_another_users_task_is_a_poison_event_and_has_no_effect(
    database_url: str,
) -> None:
    owner, forger = f"user-{uuid.uuid4()}", f"user-{uuid.uuid4()}"
    created = await create_task(owner, "mine")
    forged = an_event(forger, "forged", task_id=uuid.UUID(created.id))
    with pytest.raises(PoisonEvent):
        await consume("test-consumer", receive(CREATED, forged), make_task)
    assert await count_tasks(forger) == 0
    # Rolled back whole: the tracking row too, so the forger cannot use up the event id either.
    async with get_sessionmaker()() as session:
        tracked = select(func.count()).where(ProcessedEvent.event_id == uuid.UUID(forged["id"]))
        assert (await session.execute(tracked)).scalar_one() == 0


# --- the local dispatcher ---------------------------------------------------------------------------


def flaky_function(failures: int, status: int) -> tuple[Starlette, list[dict[str, str]]]:
    """A receiver that answers `status` `failures` times, then 200; it records what it received."""
    received: list[dict[str, str]] = []

    async def endpoint(request: Request) -> Response:
        received.append(dict(request.headers))
        return Response(status_code=status if len(received) <= failures else 200)

    return Starlette(routes=[Route("/", endpoint, methods=["POST"])]), received


async def a_record(settings: Settings) -> Any:
    """A real record from the broker: the created event of a task, relayed."""
    task_id = await a_task_lifecycle(f"user-{uuid.uuid4()}")
    publisher = Publisher(settings)
    try:
        await relay(settings, publisher)
    finally:
        await publisher.close()
    records = await read_topic(settings, settings.topic_task_events, 4)
    return next(r for r in records if r.key == str(task_id).encode())


async def test_a_consumer_failing_transiently_is_retried_until_it_succeeds(settings: Settings) -> None:
    record = await a_record(settings)
    app, received = flaky_function(failures=2, status=503)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://fn") as client:
        outcome = await post_event(client, "http://fn/", record)
    assert outcome.delivered
    assert len(received) == 3
    assert {r["ce-id"] for r in received} == {dict(record.headers)["ce_id"].decode()}
    assert received[0]["ce-type"] == "dev.todo.task.created"  # binary mode: attributes in headers


async def test_a_poison_event_lands_in_the_dead_letter_topic_with_its_reason(settings: Settings) -> None:
    record = await a_record(settings)
    app, received = flaky_function(failures=99, status=422)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        subscription = Subscription(CREATED, "http://fn/", settings, producer)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://fn") as client:
            await subscription.deliver(client, [record])
    finally:
        await producer.stop()
    assert len(received) == 1  # a 4xx is not retried
    [dead] = await read_topic(settings, f"{settings.topic_task_events}.dlq", 1)  # this test's topic
    headers = dict(dead.headers)
    assert headers["ce_id"] == dict(record.headers)["ce_id"]
    assert headers["ce_knativeerrorcode"] == b"422"
    assert headers["ce_deadletterreason"].startswith(b"HTTP 422")
    assert dead.value == record.value
