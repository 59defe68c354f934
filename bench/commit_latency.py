"""Commit-to-consumer latency through the local stack: a create-task's 201 to a webhook receiver's POST.

The whole stack runs as `todo run` (every function, the gateway, the local eventing) against this
script's own PostgreSQL and broker. A receiver run here subscribes to dev.todo.task.created; tasks are
created one at a time through the gateway, and each one's latency is the time from its 201 to the
receiver getting its event. The baseline beside it is the gateway round trip of the create itself.
Goal on this machine: p50 under 100 ms, p99 under 500 ms.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import harness
import httpx

from todo_backend.catalog import source_checkout
from todo_backend.devstack.runner import free_port

CREATED = "dev.todo.task.created"
STACK_START_SECONDS = 180.0
DELIVERY_TIMEOUT_SECONDS = 15.0  # per event; a miss is counted, not waited for forever
GOAL_P50_MS, GOAL_P99_MS = 100.0, 500.0
PAUSE_SECONDS = 0.3  # the longest random pause between one-at-a-time creates


def _e2e_running() -> ModuleType:
    """tests/e2e/running.py, which starts the stack as the e2e tests do: the one copy of `todo_run`.
    Loaded from its file: tests/ is no package, and tests/e2e on sys.path would expose all its modules."""
    path = source_checkout() / "tests" / "e2e" / "running.py"
    spec = importlib.util.spec_from_file_location("running", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


todo_run = _e2e_running().todo_run


@dataclass(frozen=True)
class Arrival:
    perf: float  # time.perf_counter(), the clock latencies are measured on
    wall: float  # time.time(), comparable with the database's and the broker's timestamps


class Receiver:
    """A webhook endpoint: notes when each event (by type and subject) first arrives, answers 204."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: dict[tuple[str, str], Arrival] = {}
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrival = Arrival(time.perf_counter(), time.time())
                event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(204)
                self.end_headers()
                with receiver.changed:
                    receiver.arrivals.setdefault((event["type"], event["subject"]), arrival)
                    receiver.changed.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait(self, subjects: Sequence[str], timeout: float) -> None:
        """Until every subject's task.created has arrived, or `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not all((CREATED, s) in self.arrivals for s in subjects):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.changed.wait(left)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def stack_env(servers: harness.Services) -> dict[str, str]:
    """`todo run`'s environment against our servers, as tests/e2e/conftest.py gives it."""
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers or "",
        "JWT_SECRET": harness.JWT_SECRET,
    }
    env.pop("METRICS_PORT", None)
    if servers.embedded_broker:
        env["KAFKA_ENABLE_IDEMPOTENCE"] = "false"  # Tansu rejects the idempotent producer
    return env


@dataclass(frozen=True)
class Created:
    task_id: str
    round_trip: float  # seconds, the gateway's answer to POST /api/tasks
    answered: Arrival  # when the 201 was in hand


def create(client: httpx.Client, n: int) -> Created:
    started = time.perf_counter()
    response = client.post("/api/tasks", json={"title": f"latency probe {n}", "tags": ["bench"]})
    answered = Arrival(time.perf_counter(), time.time())
    if response.status_code != 201:
        raise RuntimeError(f"create-task answered {response.status_code}: {response.text[:500]}")
    return Created(response.json()["id"], answered.perf - started, answered)


@dataclass
class Phase:
    name: str
    created: list[Created]
    latencies: list[float]  # seconds, for the events that arrived
    missed: int


def one_at_a_time(client: httpx.Client, receiver: Receiver, count: int) -> Phase:
    """Each create waits for its delivery before the next: the latency of an event on a quiet stack.

    A random pause before each create, so events fall at random points of whatever cycles the pipeline
    runs on (a consumer's fetch, a poll): created right after the previous delivery, each would fall at
    the same point of the cycle and measure it always the same way."""
    pauses = random.Random(42)
    created, latencies, missed = [], [], 0
    for n in range(count):
        time.sleep(pauses.uniform(0, PAUSE_SECONDS))
        task = create(client, n)
        created.append(task)
        receiver.wait([task.task_id], DELIVERY_TIMEOUT_SECONDS)
        arrival = receiver.arrivals.get((CREATED, task.task_id))
        if arrival is None:
            missed += 1
        else:
            latencies.append(arrival.perf - task.answered.perf)
    return Phase("one at a time", created, latencies, missed)


def back_to_back(client: httpx.Client, receiver: Receiver, count: int) -> Phase:
    """Creates sent one after another without waiting for deliveries: events overlap in the pipeline."""
    created = [create(client, n) for n in range(count)]
    receiver.wait([t.task_id for t in created], DELIVERY_TIMEOUT_SECONDS + count * 0.1)
    latencies, missed = [], 0
    for task in created:
        arrival = receiver.arrivals.get((CREATED, task.task_id))
        if arrival is None:
            missed += 1
        else:
            latencies.append(arrival.perf - task.answered.perf)
    return Phase("back to back", created, latencies, missed)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q% of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return ordered[int(rank) - 1]


# --- where the time goes --------------------------------------------------------------------------
# Timestamps the stack leaves anyway, all on this machine's one clock: the event row's `time` (stamped
# as the create's transaction builds it), the Kafka record's timestamp (the producer's, at send), the
# delivery row's `created_at` (now() of deliver-webhooks' consumer transaction: when it began) and
# `last_attempt_at` (now() of the transaction recording the attempt, which begins after the receiver
# answered).
STAGES = (
    ("outbox row stamped -> 201 in hand", "stamped", "answered"),
    ("response -> record sent (the fast path)", "answered", "sent"),
    ("record sent -> consumer begins", "sent", "consumed"),
    ("consumer begins -> receiver", "consumed", "arrived"),
)


async def timestamps(
    database_url: str, bootstrap: str, task_ids: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per task: its created event's timestamps along the way, as Unix seconds."""
    from aiokafka import AIOKafkaConsumer

    found: dict[str, dict[str, float]] = {t: {} for t in task_ids}
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT e.subject, e.time, d.created_at, d.last_attempt_at"
            " FROM task_event e LEFT JOIN webhook_delivery d ON d.event_id = e.id"
            " WHERE e.type = $1 AND e.subject = ANY($2::text[])",
            CREATED,
            list(task_ids),
        )
    finally:
        await conn.close()
    for subject, stamped, consumed, attempted in rows:
        found[subject].update(_unix(stamped=stamped, consumed=consumed))
        found[subject].update(_unix(attempted=attempted))
    consumer = AIOKafkaConsumer(
        "task-events", bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        wanted = set(task_ids)
        deadline = time.monotonic() + 30
        while wanted and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    key = (record.key or b"").decode()
                    if key in wanted and dict(record.headers).get("ce_type") == CREATED.encode():
                        found[key]["sent"] = record.timestamp / 1000
                        wanted.discard(key)
    finally:
        await consumer.stop()
    return found


def _unix(**stamps: datetime | None) -> dict[str, float]:
    return {name: value.timestamp() for name, value in stamps.items() if value is not None}


def breakdown(phase: Phase, stamps: dict[str, dict[str, float]], receiver: Receiver) -> list[list[object]]:
    rows: list[list[object]] = []
    for task in phase.created:
        arrival = receiver.arrivals.get((CREATED, task.task_id))
        if arrival is not None:
            stamps[task.task_id].update(answered=task.answered.wall, arrived=arrival.wall)
    for label, start, end in STAGES:
        spans = [
            (s[end] - s[start]) * 1000
            for s in (stamps[t.task_id] for t in phase.created)
            if start in s and end in s
        ]
        if spans:
            rows.append([f"  {label}", percentile(spans, 50), percentile(spans, 90), percentile(spans, 99)])
    return rows


# --- the run --------------------------------------------------------------------------------------


def main() -> None:
    args = harness.arguments(__doc__ or "")
    count, warmup = (40, 5) if args.quick else (200, 10)
    load_at_start = harness.load_average()
    with (
        harness.services(broker=True) as servers,
        tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp,
        todo_run(stack_env(servers), Path(tmp) / "stack.log", STACK_START_SECONDS) as gateway,
    ):
        receiver = Receiver()
        headers = {"Authorization": f"Bearer {harness.token(f'latency-{uuid.uuid4()}')}"}
        try:
            with httpx.Client(base_url=gateway, headers=headers, timeout=30) as client:
                hook = client.post(
                    "/api/webhooks",
                    json={"url": receiver.url, "event_types": [CREATED], "secret": "bench-secret-of-length"},
                )
                if hook.status_code != 201:
                    raise RuntimeError(f"create-webhook answered {hook.status_code}: {hook.text[:500]}")
                # Unmeasured: each process's first connections, the producer, the consumer groups' fetches.
                one_at_a_time(client, receiver, warmup)
                phases = [one_at_a_time(client, receiver, count), back_to_back(client, receiver, count)]
            assert servers.bootstrap_servers is not None
            task_ids = [t.task_id for p in phases for t in p.created]
            stamps = asyncio.run(timestamps(servers.database_url, servers.bootstrap_servers, task_ids))
            report(phases, stamps, receiver, load_at_start)
        finally:
            receiver.stop()


def report(
    phases: list[Phase], stamps: dict[str, dict[str, float]], receiver: Receiver, load_at_start: float
) -> None:
    rows: list[list[object]] = []
    for phase in phases:
        trips = [t.round_trip * 1000 for t in phase.created]
        lat = [x * 1000 for x in phase.latencies] or [float("nan")]
        rows.append(
            [
                f"{phase.name}: create round trip",
                percentile(trips, 50),
                percentile(trips, 90),
                percentile(trips, 99),
                max(trips),
                len(trips),
            ]
        )
        rows.append(
            [
                f"{phase.name}: 201 -> receiver",
                percentile(lat, 50),
                percentile(lat, 90),
                percentile(lat, 99),
                max(lat),
                f"{len(phase.latencies)}" + (f" ({phase.missed} missed)" if phase.missed else ""),
            ]
        )
        rows += [[*r, "", ""] for r in breakdown(phase, stamps, receiver)]
    print("commit_latency: todo run on this machine; ms; the indented rows split the latency (their p50s)")
    print(harness.table(["", "p50", "p90", "p99", "max", "events"], rows))
    print(harness.machine_note(load_at_start))
    quiet = phases[0]
    lat = [x * 1000 for x in quiet.latencies] or [float("nan")]
    trips = [t.round_trip * 1000 for t in quiet.created]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    verdict = "met" if p50 < GOAL_P50_MS and p99 < GOAL_P99_MS and not quiet.missed else "missed"
    print(
        f"commit_latency: 201 -> receiver p50 {p50:.0f} ms, p99 {p99:.0f} ms "
        f"({p50 / percentile(trips, 50):.1f}x and {p99 / percentile(trips, 99):.1f}x the create round trip); "
        f"goal p50 < {GOAL_P50_MS:.0f} ms, p99 < {GOAL_P99_MS:.0f} ms: {verdict}"
    )


if __name__ == "__main__":
    main()
