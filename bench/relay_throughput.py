"""Relay throughput: events/s published from an outbox backlog, against a bare producer, in the same run.

A backlog of unpublished task_event rows (20,000 tasks x 5 events, each task's events spread over the
backlog as they would be in time) is COPYed in, then `relay_outbox` runs until every row is published,
once per relay_batch_size tried (the backlog is laid anew before each). The baseline is an aiokafka
producer with the Publisher's settings sending the same (key, headers, value) records, made by
messaging.to_kafka_record beforehand, as fast as it can: send each record, then gather the acks, per
batch of as many records as the relay published per batch.

    python bench/relay_throughput.py [--quick]
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg
import harness

from todo_backend import pg, settings
from todo_backend.messaging import Publisher, producer_settings, to_kafka_record, topic_for
from todo_backend.models import TaskEvent
from todo_backend.relay import relay_outbox

EVENTS_PER_TASK = 5  # created, updated x 3, completed
BUDGET_SECONDS = 600.0
COLUMNS = ("id", "type", "source", "subject", "time", "partition_key", "user_id", "data", "traceparent")


class TimedPublisher(Publisher):
    """The relay's Publisher, keeping the time spent in publish (records, sends, acks)."""

    publishing = 0.0

    async def publish(self, rows: list[TaskEvent]) -> None:
        started = time.perf_counter()
        try:
            await super().publish(rows)
        finally:
            self.publishing += time.perf_counter() - started


@dataclass(frozen=True)
class Run:
    system: str
    events: int
    seconds: float
    batches: int
    publishing: float | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def main() -> None:
    args = harness.arguments(__doc__ or "")
    events = 10_000 if args.quick else 100_000
    load = harness.load_average()
    default = settings.Settings.model_fields["relay_batch_size"].default
    batch_sizes = (default, 2 * default) if args.quick else (default // 5, default, 4 * default)
    with harness.services(broker=True) as svc:
        assert svc.bootstrap_servers is not None
        os.environ.update(
            {
                "DATABASE_URL": svc.database_url,
                "JWT_SECRET": harness.JWT_SECRET,
                "TODO_ENV": "local",
                "KAFKA_BOOTSTRAP_SERVERS": svc.bootstrap_servers,
                "KAFKA_ENABLE_IDEMPOTENCE": "false"
                if svc.embedded_broker
                else os.environ.get("KAFKA_ENABLE_IDEMPOTENCE", "true"),
            }
        )
        settings.get_settings.cache_clear()
        runs, convert = asyncio.run(_compare(svc.database_url, events, batch_sizes))
    _report(runs, events, convert, load, shipped=batch_sizes.index(default))


async def _compare(url: str, events: int, batch_sizes: tuple[int, ...]) -> tuple[list[Run], float]:
    rows = _backlog(events)
    started = time.process_time()
    # Duck-typed rows (the attributes of a TaskEvent): 100,000 SQLModel objects would take longer to build.
    records = [to_kafka_record(row) for row in rows]
    convert = time.process_time() - started
    # The backlog's 100,000 objects and their records stay alive in this process, as a relay's never
    # would: frozen, the garbage collector no longer walks them while either side runs.
    gc.collect()
    gc.freeze()
    conn = await asyncpg.connect(url)
    try:
        if await conn.fetchval("SELECT count(*) FROM task_event"):
            raise SystemExit("task_event is not empty: the relay benchmark needs a fresh database")
        runs = []
        for batch_size in batch_sizes:
            await _lay(conn, rows)
            relay = await _relay(batch_size)
            left = await conn.fetchval("SELECT count(*) FROM outbox")
            if relay.events != events or left:
                raise RuntimeError(f"the relay published {relay.events} of {events}; {left} left")
            per_batch = round(relay.events / relay.batches)
            runs += [relay, await _producer(records, per_batch)]
        await conn.execute("TRUNCATE task_event, outbox")
        return runs, convert
    finally:
        await conn.close()
        await pg.close_pool()


def _backlog(events: int) -> list[SimpleNamespace]:
    """Realistic outbox rows: each task created, updated three times and completed, interleaved in time."""
    rng = random.Random(7)
    tasks = [(uuid.uuid4(), f"user-{n % 500}") for n in range(events // EVENTS_PER_TASK)]
    start = datetime.now(UTC) - timedelta(hours=2)
    rows: list[SimpleNamespace] = []
    for step in range(EVENTS_PER_TASK):
        rng.shuffle(tasks)
        for task_id, user_id in tasks:
            at = start + timedelta(milliseconds=len(rows))
            kind = "created" if step == 0 else "completed" if step == EVENTS_PER_TASK - 1 else "updated"
            data: dict[str, Any] = {"task": _task_json(task_id, step, at, start)}
            if kind != "created":
                data["changed"] = ["completed"] if kind == "completed" else ["title", "tags"]
            rows.append(
                SimpleNamespace(
                    id=uuid.uuid4(),
                    type=f"dev.todo.task.{kind}",
                    source=f"/functions/{kind[:-1] if kind != 'created' else 'create'}-task",
                    subject=str(task_id),
                    time=at,
                    partition_key=str(task_id),
                    user_id=user_id,
                    data=data,
                    project_id=None,
                    sequence=len(rows) + 1,  # not laid (the table assigns it), but in every record
                    # Every change is made in a traced request now, and carries its trace context.
                    traceparent=f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-00",
                    tracestate=None,
                )
            )
    return rows


def _task_json(task_id: uuid.UUID, step: int, at: datetime, created: datetime) -> dict[str, Any]:
    def stamp(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None

    done = step == EVENTS_PER_TASK - 1
    return {
        "id": str(task_id),
        "title": f"Prepare the quarterly report (draft {step + 1})",
        "description": "Collect the numbers from finance and the notes from the last three reviews.",
        "completed": done,
        "completed_at": stamp(at if done else None),
        "due_date": stamp(created + timedelta(days=3)),
        "priority": "high",
        "tags": ["work", "reports"],
        "remind_before_minutes": 60,
        "reminded_at": None,
        "recurring_task_id": None,
        "occurrence_at": None,
        "created_at": stamp(created),
        "updated_at": stamp(at),
        "version": step + 1,
    }


async def _lay(conn: asyncpg.Connection, rows: list[SimpleNamespace]) -> None:
    """The backlog anew: every row unpublished, in the same order (so the same sequence order)."""
    await conn.execute("TRUNCATE task_event, outbox")
    records = [tuple(json.dumps(r.data) if c == "data" else getattr(r, c) for c in COLUMNS) for r in rows]
    await conn.copy_records_to_table("task_event", records=records, columns=COLUMNS)
    await conn.execute("VACUUM ANALYZE task_event")


async def _relay(batch_size: int) -> Run:
    publisher = TimedPublisher(settings.get_settings())
    try:
        started = time.perf_counter()
        result = await relay_outbox(
            await pg.get_pool(),
            publisher,
            grace_seconds=0,
            batch_size=batch_size,
            budget_seconds=BUDGET_SECONDS,
        )
        seconds = time.perf_counter() - started
    finally:
        await publisher.close()
    return Run(
        f"relay_outbox, batch_size={batch_size}",
        result.published,
        seconds,
        result.batches,
        publisher.publishing,
    )


async def _producer(records: list[tuple[Any, list[tuple[str, bytes]], Any]], per_batch: int) -> Run:
    """The bare producer: the Publisher's settings, the same records, send then gather per batch."""
    from aiokafka import AIOKafkaProducer

    s = settings.get_settings()
    topic = topic_for("dev.todo.task.created", s)
    producer = AIOKafkaProducer(**producer_settings(s))
    started = time.perf_counter()
    await producer.start()
    try:
        batches = 0
        for first in range(0, len(records), per_batch):
            futures = [
                await producer.send(topic, value, key, headers=headers)
                for key, headers, value in records[first : first + per_batch]
            ]
            await asyncio.gather(*futures)
            batches += 1
        seconds = time.perf_counter() - started
    finally:
        await producer.stop()
    return Run(f"bare producer, {per_batch} per gather", len(records), seconds, batches)


def _report(runs: list[Run], events: int, convert: float, load: float, shipped: int) -> None:
    """`shipped`: the index of the run at the default batch size among those tried."""
    print(
        f"Relay throughput: a backlog of {events:,} outbox rows ({events // EVENTS_PER_TASK:,} tasks x 5)\n"
    )
    rows = []
    pairs = list(zip(runs[::2], runs[1::2], strict=True))
    for relay, base in pairs:
        share = f"{100 * relay.publishing / relay.seconds:.0f}%" if relay.publishing else "-"
        rows.append([relay.system, relay.batches, relay.seconds, relay.rate, relay.rate / base.rate, share])
        rows.append([base.system, base.batches, base.seconds, base.rate, 1.0, "-"])
    header = ["system", "batches", "seconds", "events/s", "x producer", "in publish()"]
    print(harness.table(header, rows))
    per_event = 1e6 * convert / events
    print(f"\nto_kafka_record alone (the baseline's records, made before timing): {per_event:.0f} us/event")
    relay, base = max(pairs, key=lambda pair: pair[0].rate)
    print(harness.machine_note(load))
    print(f"best: {relay.system}")
    print(f"relay throughput ratio relay / bare producer: {relay.rate / base.rate:.2f}x ({relay.system})")
    relay, base = pairs[shipped]  # the goal holds at the batch size that ships; the others guide its choice
    print(harness.goal(f"{relay.system} (the default) / bare producer", relay.rate / base.rate, at_least=0.5))


if __name__ == "__main__":
    main()
