"""The event backbone under broker faults: a broker SIGKILLed and restarted empty during mixed API load,
and a broker address that accepts connections and never answers. Real PostgreSQL, real Tansu."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from taskapi import Api, Sql

from todo_backend import bootstrap, pg, relay
from todo_backend.devstack.broker import EmbeddedBroker
from todo_backend.messaging import Publisher
from todo_backend.relay import relay_outbox
from todo_backend.settings import Settings, get_settings

RESTARTS = 3
WORKERS = 16  # concurrency 16, as in the run that lost events
TASKS_PER_WORKER = 12  # each task: create, two updates, complete: 768 changes in all
SILENT_BURST, SILENT_WORKERS = 48, 16  # creates against the broker that never answers, 16 at a time


def fault_settings(bootstrap_servers: str, **changes: Any) -> Settings:
    suffix = uuid.uuid4().hex[:8]  # topics of this test alone
    return get_settings().model_copy(
        update={
            "kafka_bootstrap_servers": bootstrap_servers,
            "kafka_enable_idempotence": False,
            "topic_task_events": f"task-events-{suffix}",
            "topic_reminders": f"reminders-{suffix}",
            "kafka_publish_timeout_seconds": 1.0,
            **changes,
        }
    )


@pytest.fixture
def fast_path(monkeypatch: pytest.MonkeyPatch) -> Callable[[Publisher], None]:
    """Route the functions' fast path through `publisher`, with a breaker of this test's own."""

    def use(publisher: Publisher) -> None:
        monkeypatch.setattr(bootstrap, "get_publisher", lambda: publisher)
        breaker = bootstrap.CircuitBreaker(publisher.settings.fast_path_cooldown_seconds)
        monkeypatch.setattr(bootstrap, "get_fast_path_breaker", lambda: breaker)

    return use


def crash(broker: EmbeddedBroker) -> None:
    """SIGKILL, as the OOM killer would: no shutdown, and Tansu comes back empty."""
    process = broker._process
    assert process is not None
    process.send_signal(signal.SIGKILL)
    process.wait()
    broker._process = None


async def read_all(settings: Settings, topic: str) -> list[Any]:
    """Every record on every partition of `topic`, read up to the end offsets the broker reports."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        for _ in range(10_000):  # bounded: an end offset that is never reached is a failure, not a hang
            positions = [await consumer.position(tp) for tp in partitions]
            if all(at >= ends[tp] for at, tp in zip(positions, partitions, strict=True)):
                return records
            for batch in (await consumer.getmany(*partitions, timeout_ms=200)).values():
                records.extend(batch)
        raise AssertionError(f"{topic}: end offsets {ends} not reached")
    finally:
        await consumer.stop()


async def relay_until_drained(publisher: Publisher, sql: Sql, users: list[str]) -> None:
    for _ in range(100):
        with contextlib.suppress(Exception):  # a tick that meets a dead broker fails; the next one runs
            await relay_outbox(await pg.get_pool(), publisher, grace_seconds=0.0, batch_size=200)
        waiting = await sql.pool.fetchval(
            "SELECT count(*) FROM outbox JOIN task_event USING (sequence) WHERE user_id = ANY($1)", users
        )
        if waiting == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{waiting} outbox rows of this test never published")


async def test_changes_after_a_broker_restarted_empty_are_on_the_topic_in_one_partition_in_order(
    new_user: Callable[[], Api], sql: Sql, fast_path: Callable[[Publisher], None]
) -> None:
    broker = EmbeddedBroker()
    broker.start()
    # A generous bound on acks: one that runs out after the broker wrote the records (a starved CPU
    # under a busy suite) leaves them unmarked, so they are published again: at least once, absorbed
    # by the consumers' tracking rows, but a duplicate on the topic, which this test counts. The one
    # duplicate it allows: a batch in flight when the broker died, which the producer sends again to the
    # restarted one. Tansu acknowledges it for a topic it no longer has, so the publisher cannot tell it
    # was kept, and publishes the rows again (Kafka and Redpanda refuse such records instead).
    settings = fault_settings(
        broker.bootstrap_servers, fast_path_cooldown_seconds=0.2, kafka_publish_timeout_seconds=5.0
    )
    publisher = Publisher(settings)
    fast_path(publisher)
    await publisher.ensure_topics()
    users = [new_user() for _ in range(WORKERS)]
    changes = 0
    restarted_after: int | None = None  # the highest outbox sequence when the last restart was done
    crashes: list[tuple[float, float]] = []  # (killed, started again), in ms since the epoch
    statuses: defaultdict[int, int] = defaultdict(int)
    progress = asyncio.Event()

    async def worker(api: Api) -> None:
        nonlocal changes
        for n in range(TASKS_PER_WORKER):
            created = await api.post("/api/tasks", json={"title": f"task {n}"})
            statuses[created.status_code] += 1
            url = f"/api/tasks/{created.json()['id']}"
            for step in ({"priority": "high"}, {"title": f"task {n}, edited"}):
                statuses[(await api.patch(url, json=step)).status_code] += 1
            statuses[(await api.post(f"{url}/complete")).status_code] += 1
            changes += 4
            progress.set()

    # Stopped between ticks, not cancelled: a tick cancelled after the acks and before its commit leaves
    # rows that are published again, duplicates that would be this test's own doing.
    stop_relay = asyncio.Event()

    async def relay_ticks() -> None:  # the relay-outbox cron, every 100 ms
        while not stop_relay.is_set():
            with contextlib.suppress(Exception):
                await relay_outbox(await pg.get_pool(), publisher, grace_seconds=0.2, batch_size=200)
            await asyncio.sleep(0.1)

    async def faults() -> None:
        nonlocal restarted_after
        total = WORKERS * TASKS_PER_WORKER * 4
        for k in range(1, RESTARTS + 1):
            while changes < total * k // (RESTARTS + 1):  # spread the restarts over the load
                await progress.wait()
                progress.clear()
            # In a thread: the load and the relay keep running while the broker is down and starting.
            killed = time.time() * 1000
            await asyncio.to_thread(crash, broker)
            await asyncio.to_thread(broker.start)
            crashes.append((killed, time.time() * 1000))
            restarted_after = await sql.pool.fetchval("SELECT coalesce(max(sequence), 0) FROM task_event")

    relay_cron = asyncio.create_task(relay_ticks())
    try:
        await asyncio.gather(faults(), *(worker(u) for u in users))
        stop_relay.set()
        await relay_cron
        ids = [u.user_id for u in users]
        await relay_until_drained(publisher, sql, ids)
        records = await read_all(settings, settings.topic_task_events)
        rows = await sql.pool.fetch(
            "SELECT id::text, subject, sequence FROM task_event WHERE user_id = ANY($1)", ids
        )
    finally:
        relay_cron.cancel()
        await publisher.close()
        broker.stop()

    assert statuses.keys() == {200, 201}, dict(statuses)
    sequence_of = {r["id"]: r["sequence"] for r in rows}
    ours = [r for r in records if dict(r.headers)["ce_id"].decode() in sequence_of]
    first: dict[str, Any] = {}  # each event's first record on the topic
    copies: defaultdict[str, int] = defaultdict(int)
    partitions: defaultdict[str, set[int]] = defaultdict(set)
    for r in sorted(ours, key=lambda r: (r.partition, r.offset)):
        event_id = dict(r.headers)["ce_id"].decode()
        first.setdefault(event_id, r)
        copies[event_id] += 1
        partitions[r.key.decode()].add(r.partition)
    assert restarted_after is not None
    # Per-task order, among the first copies of what was committed after the last restart, as `lost`
    # counts. A row committed before it may have been acknowledged by a broker that then died empty:
    # such a record is gone, and a copy that turns up later (resent from a batch in flight at the
    # crash) can follow the task's newer events. A broker that keeps what it acknowledged has no such
    # record. Seen in 2 of some 25 runs here, both times a row committed before the last restart.
    by_task: defaultdict[str, list[int]] = defaultdict(list)
    for event_id, r in first.items():  # in topic order: dicts keep insertion order
        if sequence_of[event_id] > restarted_after:
            by_task[r.key.decode()].append(sequence_of[event_id])
    # A record's timestamp is when the producer first took it; a resend keeps it.
    bound = settings.kafka_publish_timeout_seconds * 1000
    in_flight_at_a_crash = {
        event_id
        for event_id, r in first.items()
        if any(killed - bound <= r.timestamp <= started + bound for killed, started in crashes)
    }
    expected = [r["id"] for r in rows if r["sequence"] > restarted_after]
    lost = sum(1 for event_id in expected if event_id not in first)
    duplicated = sum(n - 1 for n in copies.values())
    unexplained = sum(n - 1 for event_id, n in copies.items() if event_id not in in_flight_at_a_crash)
    split = sum(1 for p in partitions.values() if len(p) > 1)
    out_of_order = sum(1 for seqs in by_task.values() for a, b in itertools.pairwise(seqs) if b <= a)
    print(
        f"\nbroker fault test: {changes} changes, {RESTARTS} SIGKILL+empty restarts; "
        f"{len(expected)} committed after the last restart; lost {lost}, duplicated {duplicated} "
        f"({unexplained} not in flight at a crash), split {split} tasks, order violations {out_of_order} "
        f"({len(ours)} records of ours on the topic)"
    )
    assert (lost, unexplained, split, out_of_order) == (0, 0, 0, 0)


async def test_writes_against_a_broker_that_never_answers_all_succeed_and_hold_no_connection(
    new_user: Callable[[], Api],
    sql: Sql,
    fast_path: Callable[[Publisher], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connections: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read()  # reads every request until the client hangs up; writes nothing back

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    settings = fault_settings(
        f"127.0.0.1:{server.sockets[0].getsockname()[1]}", fast_path_cooldown_seconds=60
    )
    publisher = Publisher(settings)
    fast_path(publisher)

    attempts: list[float] = []  # how long each fast-path publish that the breaker let through took
    publish_committed = relay.publish_committed

    async def timed(*args: Any) -> int:
        started = time.monotonic()
        try:
            return await publish_committed(*args)
        finally:
            attempts.append(time.monotonic() - started)

    monkeypatch.setattr(relay, "publish_committed", timed)

    held: list[float] = []  # how long each pool connection was checked out
    checked_out_at: dict[int, float] = {}

    class TimedPool(asyncpg.pool.Pool):
        """The process's pool, timing every checkout to its checkin."""

        async def _acquire(self, *args: Any) -> Any:
            connection = await super()._acquire(*args)
            checked_out_at[id(connection)] = time.monotonic()
            return connection

        async def release(self, connection: Any, **kwargs: Any) -> None:
            held.append(time.monotonic() - checked_out_at.pop(id(connection)))
            await super().release(connection, **kwargs)

    await pg.close_pool()
    monkeypatch.setattr(asyncpg.pool, "Pool", TimedPool)
    pool = await pg.get_pool()
    statuses: defaultdict[int, int] = defaultdict(int)

    async def worker(api: Api) -> None:
        for n in range(SILENT_BURST // SILENT_WORKERS):
            statuses[(await api.post("/api/tasks", json={"title": f"task {n}"})).status_code] += 1

    try:
        # Each response comes after its fast path ran (the in-process client waits for background tasks).
        await asyncio.gather(*(worker(new_user()) for _ in range(SILENT_WORKERS)))
        still_checked_out = pool.get_size() - pool.get_idle_size()
        idle_in_transaction = await sql.pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
        )
    finally:
        await publisher.close()
        await pg.close_pool()  # the next test's pool is a plain one again
        server.close()
        for writer in connections:
            writer.close()
        await server.wait_closed()

    timeout = settings.kafka_publish_timeout_seconds
    print(
        f"\nsilent broker: {SILENT_BURST} creates, {SILENT_WORKERS} at a time: statuses {dict(statuses)}; "
        f"{len(attempts)} fast-path attempts (longest {max(attempts):.2f} s), "
        f"{SILENT_BURST - len(attempts)} skipped by the breaker; longest connection hold {max(held):.3f} s; "
        f"{len(connections)} connections to the broker; checked out after: {still_checked_out}, "
        f"idle in transaction after: {idle_in_transaction}"
    )
    assert dict(statuses) == {201: SILENT_BURST}
    assert connections, "the publisher never reached the silent broker"
    # Only the fast paths already under way when the first one timed out try; each gives up in its bound.
    assert 1 <= len(attempts) <= SILENT_WORKERS, attempts
    assert max(attempts) < 2 * timeout, attempts
    # No connection was held while a fast path waited on the broker: the wait is never in a transaction.
    assert max(held) < timeout, sorted(held)[-SILENT_WORKERS:]
    assert (still_checked_out, idle_in_transaction) == (0, 0)
