"""Every change writes its task row and exactly one outbox row in one transaction; a failed change, none."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from taskapi import Api, Sql, assert_problem

from todo_backend import uow
from todo_backend.events import Event, OutboxRow

Change = Callable[[Api, dict[str, Any]], Awaitable[Any]]

CHANGES: dict[str, tuple[Change, str, str]] = {
    "patch": (
        lambda api, t: api.patch(f"/api/tasks/{t['id']}", json={"title": "patched"}),
        "dev.todo.task.updated",
        "update-task",
    ),
    "put": (
        lambda api, t: api.put(f"/api/tasks/{t['id']}", json={"title": "put"}),
        "dev.todo.task.updated",
        "update-task",
    ),
    "complete": (
        lambda api, t: api.post(f"/api/tasks/{t['id']}/complete"),
        "dev.todo.task.completed",
        "complete-task",
    ),
    "patch-complete": (
        lambda api, t: api.patch(f"/api/tasks/{t['id']}", json={"completed": True}),
        "dev.todo.task.completed",
        "update-task",
    ),
    "delete": (
        lambda api, t: api.delete(f"/api/tasks/{t['id']}"),
        "dev.todo.task.deleted",
        "delete-task",
    ),
}


async def test_a_create_writes_one_task_created_row_in_the_same_transaction(alice: Api, sql: Sql) -> None:
    started = datetime.now(UTC)
    task = await alice.create(title="outboxed", tags=["x"])
    assert await sql.counts(alice.user_id) == (1, 1)
    [event] = await sql.events(task["id"])
    assert event["type"] == "dev.todo.task.created"
    assert event["source"] == "/functions/create-task"
    assert event["subject"] == event["partition_key"] == task["id"]
    assert event["user_id"] == alice.user_id
    assert event["data"] == {"task": task}
    assert event["unpublished"]
    assert isinstance(event["id"], uuid.UUID)
    assert started - timedelta(seconds=1) <= event["time"] <= datetime.now(UTC)
    task_xid, event_xid = await sql.writers(task["id"])
    assert task_xid == event_xid


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
async def test_each_change_writes_exactly_one_outbox_row(alice: Api, sql: Sql, change: str) -> None:
    act, event_type, function = CHANGES[change]
    task = await alice.create(title="before")
    response = await act(alice, task)
    assert response.status_code in {200, 204}, response.text
    events = await sql.events(task["id"])
    assert [e["type"] for e in events] == ["dev.todo.task.created", event_type]
    event = events[-1]
    assert (event["source"], event["subject"], event["partition_key"], event["user_id"]) == (
        f"/functions/{function}",
        task["id"],
        task["id"],
        alice.user_id,
    )
    if change == "delete":
        assert event["data"] == {"task": task}  # as it was before the delete
    else:
        after = response.json()
        assert event["data"]["task"] == after
        assert event["data"]["changed"]
        assert set(event["data"]["changed"]) <= set(after)
        task_xid, event_xid = await sql.writers(task["id"])
        assert task_xid == event_xid, "the task row and its outbox row were written by different transactions"
    assert await sql.counts(alice.user_id) == ((0, 2) if change == "delete" else (1, 2))


@pytest.fixture
def outbox_insert_fails(monkeypatch: pytest.MonkeyPatch, sql: Sql) -> Callable[[], Awaitable[None]]:
    """Make the next commits' outbox rows collide with an existing event id, so the outbox insert fails
    inside the commit, after the task change was issued in the same transaction."""

    async def arm() -> None:
        taken = await sql.pool.fetchval("SELECT id FROM task_event ORDER BY sequence LIMIT 1")
        assert taken is not None

        def colliding(event: Event, source: str) -> OutboxRow:
            row = real(event, source)
            row.id = taken
            return row

        monkeypatch.setattr(uow, "to_outbox_row", colliding)

    real = uow.to_outbox_row
    return arm


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
async def test_a_change_whose_outbox_row_cannot_be_written_changes_nothing(
    alice: Api, sql: Sql, outbox_insert_fails: Callable[[], Awaitable[None]], change: str
) -> None:
    act, _, _ = CHANGES[change]
    task = await alice.create(title="before", tags=["kept"])
    before = await sql.task_row(task["id"]), await sql.counts(alice.user_id)
    await outbox_insert_fails()
    response = await act(alice, task)
    assert_problem(response, 500)
    assert (await sql.task_row(task["id"]), await sql.counts(alice.user_id)) == before
    assert (await alice.get(f"/api/tasks/{task['id']}")).json() == task


async def test_a_create_whose_outbox_row_cannot_be_written_creates_nothing_and_keeps_its_key_free(
    alice: Api, sql: Sql
) -> None:
    await alice.create(title="an event to collide with")
    # create-task writes its rows in one statement of its own (no unit of work to break into): the
    # database refuses this user's next outbox row, after the task row of the same statement went in.
    trigger = f"refuse_{uuid.uuid4().hex}"
    await sql.pool.execute(
        f"CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN RAISE EXCEPTION 'outbox insert refused'; END$$;"
        f" CREATE TRIGGER {trigger} BEFORE INSERT ON task_event FOR EACH ROW"
        f" WHEN (NEW.user_id = '{alice.user_id}') EXECUTE FUNCTION {trigger}()"
    )
    headers = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    try:
        assert_problem(await alice.post("/api/tasks", json={"title": "lost"}, headers=headers), 500)
        assert_problem(await alice.post("/api/tasks", json={"title": "lost too"}), 500)  # without a key
    finally:
        await sql.pool.execute(f"DROP TRIGGER {trigger} ON task_event; DROP FUNCTION {trigger}()")
    assert await sql.counts(alice.user_id) == (1, 1)
    retry = await alice.post("/api/tasks", json={"title": "lost"}, headers=headers)
    assert retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers
    assert await sql.counts(alice.user_id) == (2, 2)
