"""Domain events and the one mapping from each event to its CloudEvent type.

The catalogue of types, with their data schemas, is documented in docs/events.asyncapi.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from todo_backend.models import (
    RecurringTask,
    RecurringTaskPublic,
    Task,
    TaskEvent,
    TaskPublic,
    rfc3339,
    utcnow,
)


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


@dataclass(frozen=True)
class RecurringTaskCreated:
    recurring_task: RecurringTask


@dataclass(frozen=True)
class RecurringTaskUpdated:
    recurring_task: RecurringTask
    changed: tuple[str, ...]


@dataclass(frozen=True)
class RecurringTaskDeleted:
    recurring_task: RecurringTask  # as it was before the delete


@dataclass(frozen=True)
class ReminderDue:
    task: Task
    remind_at: datetime  # when it was due to be sent; the event's time says when it was


Event = (
    TaskCreated
    | TaskUpdated
    | TaskCompleted
    | TaskDeleted
    | RecurringTaskCreated
    | RecurringTaskUpdated
    | RecurringTaskDeleted
    | ReminderDue
)

CLOUDEVENT_TYPES: dict[type[Any], str] = {
    TaskCreated: "dev.todo.task.created",
    TaskUpdated: "dev.todo.task.updated",
    TaskCompleted: "dev.todo.task.completed",
    TaskDeleted: "dev.todo.task.deleted",
    RecurringTaskCreated: "dev.todo.recurring-task.created",
    RecurringTaskUpdated: "dev.todo.recurring-task.updated",
    RecurringTaskDeleted: "dev.todo.recurring-task.deleted",
    ReminderDue: "dev.todo.reminder.due",
}


def task_json(task: Task) -> dict[str, Any]:
    return TaskPublic.model_validate(task).model_dump(mode="json")


def recurring_task_json(recurring: RecurringTask, next_occurrences: list[datetime]) -> dict[str, Any]:
    public = RecurringTaskPublic.model_validate(
        {**recurring.model_dump(), "next_occurrences": next_occurrences}
    )
    return public.model_dump(mode="json")


def _data(event: Event, now: datetime) -> tuple[str, str, dict[str, Any]]:
    """The subject (and partition key), the owner, and the data of an event's CloudEvent."""
    match event:
        case TaskUpdated(task, changed) | TaskCompleted(task, changed):
            return str(task.id), task.user_id, {"task": task_json(task), "changed": list(changed)}
        case TaskCreated(task) | TaskDeleted(task):
            return str(task.id), task.user_id, {"task": task_json(task)}
        case ReminderDue(task, remind_at):
            assert task.due_date is not None
            data = {
                "task": task_json(task),
                "due_at": rfc3339(task.due_date),
                "remind_at": rfc3339(remind_at),
                # How long after remind_at this was sent, whatever the cause: the system was down, or
                # the task was created (or its due date moved) inside its lead time.
                "late_seconds": max(0, int((now - remind_at).total_seconds())),
            }
            return str(task.id), task.user_id, data
        case RecurringTaskUpdated(recurring, changed):
            data = {"recurring_task": recurring_task_json(recurring, []), "changed": list(changed)}
            return str(recurring.id), recurring.user_id, data
        case RecurringTaskCreated(recurring) | RecurringTaskDeleted(recurring):
            return (
                str(recurring.id),
                recurring.user_id,
                {"recurring_task": recurring_task_json(recurring, [])},
            )
    raise TypeError(event)


def to_outbox_row(event: Event, source: str) -> TaskEvent:
    """The outbox row (a CloudEvent, stored) for `event`, emitted by the function named `source`."""
    now = utcnow()
    subject, user_id, data = _data(event, now)
    return TaskEvent(
        type=CLOUDEVENT_TYPES[type(event)],
        source=f"/functions/{source}",
        subject=subject,
        partition_key=subject,
        user_id=user_id,
        data=data,
        time=now,
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
        # The outbox position, a decimal string (binary mode carries every attribute as one): it grows
        # with commit order, so whoever gets a subject's events out of order can tell which is newer.
        "sequence": str(row.sequence),
        "data": row.data,
    }
