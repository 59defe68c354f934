"""W3C Trace Context end to end, through the real functions, PostgreSQL and broker: a request's trace id
is on the outbox row, on the broker record (the CloudEvents distributed-tracing extension), in the
consumer's log lines and on the webhook POST; and spans reach an OTLP endpoint when one is set."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from cloudevents.kafka import KafkaMessage, from_binary
from detached import background_deliveries_done
from sqlalchemy import select
from taskapi import Api, Sql
from test_webhooks import Receiver, send, subscribe

from todo_backend import logs, tracing
from todo_backend.db import get_sessionmaker
from todo_backend.messaging import Publisher
from todo_backend.models import TaskEvent
from todo_backend.settings import get_settings


@pytest.fixture
def json_lines() -> Iterator[list[str]]:
    """Every line logged meanwhile, as the cluster's JSON formatter renders it (INFO and up)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(logging.INFO)
    handler.setFormatter(logs.JsonFormatter("deliver-webhooks"))
    root, level = logging.getLogger(), logging.getLogger().level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lines
    root.removeHandler(handler)
    root.setLevel(level)


async def _only_record(bootstrap: str, topic: str) -> Any:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        records: list[Any] = []
        for _ in range(40):  # bounded: a record that never arrives is a failure, not a hang
            records += [r for batch in (await consumer.getmany(timeout_ms=250)).values() for r in batch]
            if records:
                break
        [record] = records
        return record
    finally:
        await consumer.stop()


async def test_a_requests_trace_id_is_on_the_record_in_the_consumers_log_and_on_the_webhook_post(
    alice: Api,
    function_clients: dict[str, httpx.AsyncClient],
    kafka_bootstrap_servers: str,
    json_lines: list[str],
) -> None:
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    suffix = uuid.uuid4().hex[:8]
    settings = get_settings().model_copy(
        update={
            "kafka_bootstrap_servers": kafka_bootstrap_servers,
            "kafka_enable_idempotence": False,
            "kafka_topic_partitions": 1,
            "topic_task_events": f"task-events-{suffix}",
            "topic_reminders": f"reminders-{suffix}",
        }
    )
    async with Receiver() as receiver:
        await subscribe(alice, receiver.url)
        headers = {"traceparent": f"00-{trace_id}-{caller_span}-01", "tracestate": "vendor=abc"}
        task = (await alice.post("/api/tasks", json={"title": "traced"}, headers=headers)).json()

        async with get_sessionmaker()() as session:
            [row] = (
                await session.execute(select(TaskEvent).where(TaskEvent.subject == task["id"]))
            ).scalars()
        # The row carries the span that wrote it: the caller's trace, a span id of its own.
        assert row.traceparent is not None and row.traceparent.startswith(f"00-{trace_id}-")
        assert caller_span not in row.traceparent and row.tracestate == "vendor=abc"

        publisher = Publisher(settings)
        try:
            await publisher.ensure_topics()
            await publisher.publish([row])
        finally:
            await publisher.close()
        record = await _only_record(kafka_bootstrap_servers, settings.topic_task_events)
        on_broker = {k: v.decode() for k, v in record.headers}
        assert on_broker["ce_traceparent"] == row.traceparent and on_broker["ce_tracestate"] == "vendor=abc"

        # As the trigger delivers it: the record read back as a CloudEvent, posted in binary mode. Twice,
        # so the consumer logs the duplicate at INFO, inside the event's span.
        event = from_binary(KafkaMessage(dict(record.headers), record.key, record.value))
        deliver = function_clients["deliver-webhooks"]
        assert (await send(deliver, event)).status_code == 200
        assert (await send(deliver, event)).status_code == 200
        posted = await receiver.next()
        await background_deliveries_done()  # recorded before the receiver goes away: nothing left to retry

    assert posted.headers["traceparent"].startswith(f"00-{trace_id}-")
    assert posted.headers["traceparent"] != row.traceparent  # the attempt is a span of its own
    assert json.loads(posted.body)["traceparent"] == row.traceparent
    logged = [json.loads(line) for line in json_lines]
    [duplicate] = [entry for entry in logged if "duplicate delivery" in entry["message"]]
    assert (duplicate["trace_id"], duplicate["ce_id"]) == (trace_id, str(row.id))


async def test_a_malformed_traceparent_starts_a_new_trace_and_the_request_succeeds(alice: Api) -> None:
    response = await alice.post("/api/tasks", json={"title": "t"}, headers={"traceparent": "00-zz-1-01"})
    assert response.status_code == 201


class _Collector(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        type(self).bodies.append(self.rfile.read(int(self.headers["content-length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def otlp_endpoint() -> Iterator[tuple[str, list[bytes]]]:
    """An OTLP/HTTP endpoint on 127.0.0.1 that keeps every export request's body."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Collector.bodies
    server.shutdown()


async def test_with_an_endpoint_set_spans_are_exported_under_the_callers_trace(
    otlp_endpoint: tuple[str, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    url, bodies = otlp_endpoint
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)  # read by the exporter itself
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # the batch goes out within 50 ms, not 5 s
    monkeypatch.setattr(tracing, "_tracer", None)  # restored afterwards: other tests export nothing
    tracing.configure(get_settings().model_copy(update={"otel_exporter_otlp_endpoint": url}), "create-task")
    trace_id = secrets.token_hex(16)
    with tracing.span(
        "POST create-task", tracing.parse(f"00-{trace_id}-{secrets.token_hex(8)}-01")
    ) as context:
        assert context.trace_id == trace_id and tracing.current() == context

    def exported() -> list[Any]:
        return [
            span
            for body in list(bodies)
            for resource in ExportTraceServiceRequest.FromString(body).resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
            if span.trace_id.hex() == trace_id
        ]

    for _ in range(200):  # bounded: up to 10 s for the batch thread
        if exported():
            break
        await asyncio.sleep(0.05)
    [span] = exported()
    assert span.name == "POST create-task" and span.span_id.hex() == context.traceparent[36:52]


async def test_a_cron_tick_continues_the_trace_it_is_called_with(
    alice: Api, function_clients: dict[str, httpx.AsyncClient], sql: Sql
) -> None:
    due = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    task = (await alice.post("/api/tasks", json={"title": "call back", "due_date": due})).json()
    trace_id = secrets.token_hex(16)
    tick = await function_clients["check-due-tasks"].post(
        "/", headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    )
    assert tick.status_code == 200, tick.text
    [reminder] = [r for r in await sql.events(task["id"]) if r["type"] == "dev.todo.reminder.due"]
    assert reminder["traceparent"].startswith(f"00-{trace_id}-")


def test_with_the_sdk_disabled_beside_an_endpoint_spans_still_carry_a_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OTEL_SDK_DISABLED gives a no-op tracer, which injects nothing: requests must not fail for it."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setattr(tracing, "_tracer", None)
    url = "http://127.0.0.1:9"  # never reached: nothing is exported
    tracing.configure(get_settings().model_copy(update={"otel_exporter_otlp_endpoint": url}), "create-task")
    with tracing.span("POST create-task", None) as context:
        assert tracing.parse(context.traceparent) == context
