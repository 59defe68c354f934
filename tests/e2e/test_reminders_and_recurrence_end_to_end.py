"""Reminders and recurring tasks through the whole local stack; cron ticks run by hand, as an operator can."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
from receiver import Receiver, drained, wait_for

Headers = Callable[[str], dict[str, str]]


def tick(stack: str, function: str) -> dict[str, Any]:
    response = httpx.post(f"{stack}/_fn/{function}/", timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


def occurrences(stack: str, headers: dict[str, str], series_id: str) -> list[dict[str, Any]]:
    items = httpx.get(f"{stack}/api/tasks", params={"limit": 200}, headers=headers).json()["items"]
    return sorted(
        (t for t in items if t["recurring_task_id"] == series_id), key=lambda t: str(t["occurrence_at"])
    )


def test_a_task_due_in_30_minutes_yields_one_notification_and_one_signed_webhook_after_a_tick(
    stack: str, kafka_bootstrap_servers: str, token_for: Headers, receiver: Receiver
) -> None:
    headers = token_for(f"grace-{uuid.uuid4()}")
    secret = "reminder-secret-of-some-length"
    hook = {"url": receiver.url, "event_types": ["dev.todo.reminder.due"], "secret": secret}
    created = httpx.post(f"{stack}/api/webhooks", json=hook, headers=headers)
    assert created.status_code == 201
    due = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    task = httpx.post(f"{stack}/api/tasks", json={"title": "call the bank", "due_date": due}, headers=headers)
    task_id = task.json()["id"]

    tick(stack, "check-due-tasks")
    tick(stack, "check-due-tasks")  # a second checker finds nothing left to remind

    def notifications() -> list[dict[str, Any]]:
        page = httpx.get(f"{stack}/api/notifications", params={"unread": "true"}, headers=headers).json()
        return list(page["items"])

    def deliveries() -> list[dict[str, Any]]:
        url = f"{stack}/api/webhooks/{created.json()['id']}/deliveries"
        return list(httpx.get(url, headers=headers).json()["items"])

    wait_for(lambda: len(notifications()) >= 1 and any(d["status"] == "succeeded" for d in deliveries()))
    # Counted once nothing is in flight: every trigger has committed past every record on the broker.
    # A duplicate reminder, notification, delivery or POST would show here.
    drained(kafka_bootstrap_servers)
    assert [d["status"] for d in deliveries()] == ["succeeded"]
    [notification] = notifications()
    assert notification["task_id"] == task_id and notification["title"] == "call the bank"
    [(delivery_headers, body)] = receiver.received
    event = json.loads(body)
    assert (event["type"], event["subject"]) == ("dev.todo.reminder.due", task_id)
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert delivery_headers["x-todo-signature"] == f"sha256={expected}"
    assert httpx.get(f"{stack}/api/tasks/{task_id}", headers=headers).json()["reminded_at"] is not None


async def _a_minute_earlier(database_url: str, series_id: str) -> None:
    """The series and its open occurrence as a clock a minute ahead sees them: that occurrence passed."""
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            await connection.execute(
                "UPDATE recurring_task SET next_occurrence_at = next_occurrence_at - interval '1 minute'"
                " WHERE id = $1",
                uuid.UUID(series_id),
            )
            await connection.execute(
                "UPDATE task SET occurrence_at = occurrence_at - interval '1 minute',"
                " due_date = due_date - interval '1 minute' WHERE recurring_task_id = $1",
                uuid.UUID(series_id),
            )
    finally:
        await connection.close()


def test_an_every_minute_recurring_task_gains_occurrences(
    stack: str, stack_database_url: str, token_for: Headers
) -> None:
    headers = token_for(f"heidi-{uuid.uuid4()}")
    # Clear of a minute's end, so its own upcoming occurrence does not pass while the test moves it.
    if (second := datetime.now(UTC).second) >= 50:
        time.sleep(61 - second)
    series = httpx.post(
        f"{stack}/api/recurring-tasks",
        json={"title": "stretch", "schedule": "*/1 * * * *", "timezone": "Europe/London"},
        headers=headers,
    ).json()
    try:
        [first] = occurrences(stack, headers, series["id"])
        assert first["due_date"] == first["occurrence_at"] == series["next_occurrences"][0]

        # Once the first occurrence's minute has passed, a materializer tick creates the next one; the
        # series is moved a minute back instead of waiting for a real minute.
        asyncio.run(_a_minute_earlier(stack_database_url, series["id"]))
        wait_for(
            lambda: len(occurrences(stack, headers, series["id"])) >= 2,
            tick=lambda: tick(stack, "materialize-recurrences"),
        )
        first_at, second_at = (
            datetime.fromisoformat(t["occurrence_at"]) for t in occurrences(stack, headers, series["id"])[:2]
        )
        assert second_at - first_at == timedelta(minutes=1)
        assert second_at == datetime.fromisoformat(series["next_occurrences"][0])
    finally:
        # A live every-minute series would stay due for the materializer ticks later tests run.
        httpx.delete(f"{stack}/api/recurring-tasks/{series['id']}", headers=headers)


def test_completing_a_completion_anchored_occurrence_creates_the_next(stack: str, token_for: Headers) -> None:
    headers = token_for(f"ivan-{uuid.uuid4()}")
    series = httpx.post(
        f"{stack}/api/recurring-tasks",
        json={
            "title": "water plants",
            "schedule": "0 9 * * *",
            "timezone": "Asia/Kolkata",
            "anchor": "completion",
        },
        headers=headers,
    ).json()
    [first] = occurrences(stack, headers, series["id"])
    completed = httpx.post(f"{stack}/api/tasks/{first['id']}/complete", headers=headers).json()

    # task.completed travels outbox -> broker -> trigger -> schedule-next-occurrence.
    wait_for(lambda: len(occurrences(stack, headers, series["id"])) == 2)
    nxt = occurrences(stack, headers, series["id"])[1]
    assert nxt["completed"] is False
    assert datetime.fromisoformat(nxt["occurrence_at"]) > datetime.fromisoformat(completed["completed_at"])
    local = datetime.fromisoformat(nxt["occurrence_at"]).astimezone(ZoneInfo("Asia/Kolkata"))
    assert (local.hour, local.minute) == (9, 0)
