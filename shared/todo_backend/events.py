"""Domain events and the one mapping from each event to its CloudEvent type.

The catalogue of types, with their data schemas, is documented in docs/events.asyncapi.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from todo_backend.models import Task, TaskEvent, TaskPublic, rfc3339

TYPE_PREFIX = "dev.todo."


@dataclass(frozen=True)
class TaskCreated:
    task: Task


@dataclass(frozen=True)
class TaskUpdated:
    task: Task
    changed: tuple[str, ...]


@dataclass(frozen=True)
class TaskCompleted:
    task: Task
    changed: tuple[str, ...]


@dataclass(frozen=True)
class TaskDeleted:
    task: Task  # as it was before the delete


Event = TaskCreated | TaskUpdated | TaskCompleted | TaskDeleted

CLOUDEVENT_TYPES: dict[type[Any], str] = {
    TaskCreated: "dev.todo.task.created",
    TaskUpdated: "dev.todo.task.updated",
    TaskCompleted: "dev.todo.task.completed",
    TaskDeleted: "dev.todo.task.deleted",
}


def task_json(task: Task) -> dict[str, Any]:
    return TaskPublic.model_validate(task).model_dump(mode="json")


def to_outbox_row(event: Event, source: str) -> TaskEvent:
    """The outbox row (a CloudEvent, stored) for `event`, emitted by the function named `source`."""
    data: dict[str, Any] = {"task": task_json(event.task)}
    if isinstance(event, TaskUpdated | TaskCompleted):
        data["changed"] = list(event.changed)
    subject = str(event.task.id)
    return TaskEvent(
        type=CLOUDEVENT_TYPES[type(event)],
        source=f"/functions/{source}",
        subject=subject,
        partition_key=subject,
        user_id=event.task.user_id,
        data=data,
    )


def to_cloudevent_json(row: TaskEvent) -> dict[str, Any]:
    """The structured-mode JSON of a stored CloudEvent (CloudEvents 1.0, with our extensions)."""
    return {
        "specversion": "1.0",
        "id": str(row.id),
        "source": row.source,
        "type": row.type,
        "subject": row.subject,
        "time": rfc3339(row.time),
        "datacontenttype": "application/json",
        "partitionkey": row.partition_key,
        "userid": row.user_id,
        "data": row.data,
    }
