"""Events through the whole local stack: outbox, broker, trigger dispatcher, deliver-webhooks, a receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from receiver import Receiver, wait_for

from todo_backend.devstack.runner import free_port

Headers = Callable[[str], dict[str, str]]
TASK_TYPES = [
    "dev.todo.task.created",
    "dev.todo.task.updated",
    "dev.todo.task.completed",
    "dev.todo.task.deleted",
]


def subscribe(stack: str, headers: dict[str, str], url: str, secret: str) -> dict[str, Any]:
    response = httpx.post(
        f"{stack}/api/webhooks",
        json={"url": url, "event_types": TASK_TYPES, "secret": secret},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def lifecycle(stack: str, headers: dict[str, str]) -> str:
    with httpx.Client(base_url=stack, headers=headers) as api:
        task = api.post("/api/tasks", json={"title": "watch me"}).json()
        api.patch(f"/api/tasks/{task['id']}", json={"title": "watch me closely"})
        api.post(f"/api/tasks/{task['id']}/complete")
        api.delete(f"/api/tasks/{task['id']}")
    return str(task["id"])


async def on_the_broker(bootstrap: str, task_id: str, count: int) -> list[tuple[str, str]]:
    """(type, sequence) of the task's records on task-events, in partition order."""
    consumer = AIOKafkaConsumer(
        "task-events", bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[tuple[str, str]] = []
    try:
        deadline = time.monotonic() + 30
        while len(found) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    if r.key == task_id.encode():
                        headers = dict(r.headers)
                        found.append((headers["ce_type"].decode(), headers["ce_sequence"].decode()))
    finally:
        await consumer.stop()
    return found


def test_a_subscribed_receiver_gets_each_event_once_signed_unordered_with_the_sequence_to_order_by(
    stack: str, kafka_bootstrap_servers: str, token_for: Headers, receiver: Receiver
) -> None:
    headers = token_for(f"erin-{uuid.uuid4()}")
    secret = "a-shared-secret-of-some-length"
    webhook = subscribe(stack, headers, receiver.url, secret)
    task_id = lifecycle(stack, headers)

    on_broker = asyncio.run(on_the_broker(kafka_bootstrap_servers, task_id, 4))
    assert [t for t, _ in on_broker] == TASK_TYPES
    assert [int(s) for _, s in on_broker] == sorted(int(s) for _, s in on_broker)  # commit order

    def deliveries() -> list[dict[str, Any]]:
        url = f"{stack}/api/webhooks/{webhook['id']}/deliveries"
        return list(httpx.get(url, headers=headers).json()["items"])

    # Counted once every delivery is recorded as sent once: nothing is left that could POST again.
    wait_for(lambda: [(d["status"], d["attempts"]) for d in deliveries()] == [("succeeded", 1)] * 4)
    assert len(receiver.received) == 4
    events = receiver.events()
    assert len({e["id"] for e in events}) == 4 and {e["subject"] for e in events} == {task_id}
    # Deliveries are unordered; the sequence puts them back in the order the broker holds.
    assert sorted(((e["type"], e["sequence"]) for e in events), key=lambda e: int(e[1])) == on_broker
    for delivery_headers, body in receiver.received:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert delivery_headers["x-todo-signature"] == f"sha256={expected}"
        assert delivery_headers["content-type"].startswith("application/cloudevents+json")
        assert delivery_headers["x-todo-sequence"] == json.loads(body)["sequence"]


def test_deliveries_to_a_receiver_that_was_down_arrive_once_it_is_back(
    stack: str, token_for: Headers
) -> None:
    headers = token_for(f"frank-{uuid.uuid4()}")
    port = free_port()
    webhook = subscribe(stack, headers, f"http://127.0.0.1:{port}/hook", "another-secret-of-length")
    httpx.post(f"{stack}/api/tasks", json={"title": "while you were out"}, headers=headers)

    def attempts() -> list[dict[str, Any]]:
        page = httpx.get(f"{stack}/api/webhooks/{webhook['id']}/deliveries", headers=headers).json()
        return list(page["items"])

    wait_for(lambda: any(d["attempts"] >= 1 for d in attempts()))
    assert attempts()[0]["status"] == "pending" and attempts()[0]["last_error"]

    back = Receiver(port)
    try:
        retry = lambda: httpx.post(f"{stack}/_fn/retry-webhook-deliveries/", timeout=30)  # noqa: E731
        wait_for(lambda: len(back.received) >= 1, seconds=45, tick=retry)
        [(delivery_headers, body)] = back.received
        assert json.loads(body)["type"] == "dev.todo.task.created"
        assert delivery_headers["x-todo-delivery"] == attempts()[0]["id"]
        wait_for(lambda: attempts()[0]["status"] == "succeeded")
    finally:
        back.stop()
