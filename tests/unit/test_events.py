"""Each domain event maps to one outbox row: a CloudEvent 1.0 with our type, source and extensions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from todo_backend.events import (
    CLOUDEVENT_TYPES,
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskUpdated,
    task_json,
    to_outbox_row,
)
from todo_backend.fields import Priority
from todo_backend.models import Task
from todo_backend.stored import to_cloudevent_json


def a_task(**fields: object) -> Task:
    now = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    values: dict[str, object] = {
        "user_id": "user-1",
        "title": "Water the plants",
        "priority": Priority.high,
        "tags": ["home"],
        "created_at": now,
        "updated_at": now,
    }
    values.update(fields)
    return Task(**values)


def test_a_created_event_becomes_a_task_created_row_with_the_task_and_no_changed_list() -> None:
    task = a_task()
    row = to_outbox_row(TaskCreated(task), "create-task")
    assert row.type == "dev.todo.task.created"
    assert row.source == "/functions/create-task"
    assert row.subject == str(task.id)
    assert row.partition_key == str(task.id)
    assert row.user_id == "user-1"
    assert row.data == {"task": task_json(task)}


def test_an_updated_event_carries_the_changed_field_names_in_order() -> None:
    task = a_task(version=3)
    row = to_outbox_row(TaskUpdated(task, ("title", "tags")), "update-task")
    assert row.type == "dev.todo.task.updated"
    assert row.source == "/functions/update-task"
    assert row.data == {"task": task_json(task), "changed": ["title", "tags"]}
    assert row.data["task"]["version"] == 3


def test_a_completed_event_carries_the_task_after_the_change_and_what_changed() -> None:
    done = datetime(2030, 5, 2, 8, 0, tzinfo=UTC)
    task = a_task(completed=True, completed_at=done)
    row = to_outbox_row(TaskCompleted(task, ("completed",)), "complete-task")
    assert row.type == "dev.todo.task.completed"
    assert row.source == "/functions/complete-task"
    assert row.data["changed"] == ["completed"]
    assert row.data["task"]["completed"] is True
    assert row.data["task"]["completed_at"] == "2030-05-02T08:00:00.000000Z"


def test_a_deleted_event_carries_the_task_as_it_was() -> None:
    task = a_task(title="Gone soon")
    row = to_outbox_row(TaskDeleted(task), "delete-task")
    assert row.type == "dev.todo.task.deleted"
    assert row.source == "/functions/delete-task"
    assert row.data == {"task": task_json(task)}
    assert row.data["task"]["title"] == "Gone soon"


def test_each_task_event_class_has_its_own_task_type() -> None:
    assert {cls: CLOUDEVENT_TYPES[cls] for cls in (TaskCreated, TaskUpdated, TaskCompleted, TaskDeleted)} == {
        TaskCreated: "dev.todo.task.created",
        TaskUpdated: "dev.todo.task.updated",
        TaskCompleted: "dev.todo.task.completed",
        TaskDeleted: "dev.todo.task.deleted",
    }


def test_no_two_event_classes_share_a_cloudevent_type() -> None:
    types = list(CLOUDEVENT_TYPES.values())
    assert len(types) == len(set(types))
    assert all(t.startswith("dev.todo.") for t in types)


def test_each_outbox_row_gets_a_fresh_event_id() -> None:
    task = a_task()
    first, second = (to_outbox_row(TaskCreated(task), "create-task") for _ in range(2))
    assert isinstance(first.id, uuid.UUID)
    assert first.id != second.id


def test_the_stored_row_renders_as_structured_cloudevents_1_0_json() -> None:
    task = a_task()
    row = to_outbox_row(TaskUpdated(task, ("priority",)), "update-task")
    row.time = datetime(2030, 5, 1, 14, 0, 0, 250, tzinfo=timezone(timedelta(hours=2)))
    row.sequence = 42  # the database assigns it on insert
    assert to_cloudevent_json(row) == {
        "specversion": "1.0",
        "id": str(row.id),
        "source": "/functions/update-task",
        "type": "dev.todo.task.updated",
        "subject": str(task.id),
        "time": "2030-05-01T12:00:00.000250Z",
        "datacontenttype": "application/json",
        "partitionkey": str(task.id),
        "userid": "user-1",
        "sequence": "42",
        "data": {"task": task_json(task), "changed": ["priority"]},
    }


@pytest.mark.parametrize("event", [TaskCreated, TaskDeleted])
def test_the_event_data_is_plain_json(event: type[TaskCreated] | type[TaskDeleted]) -> None:
    row = to_outbox_row(event(a_task(due_date=datetime(2030, 6, 1, tzinfo=UTC))), "x")
    task = row.data["task"]
    assert task["due_date"] == "2030-06-01T00:00:00.000000Z"
    assert task["priority"] == "high"
    assert task["id"] == row.subject
