"""Domain events and the one mapping between each event and its CloudEvent: out (`to_outbox_row`) and
back in (`from_cloudevent`), so a consumer reads the very types a handler emits.

The catalogue of types, with their data schemas, is documented in docs/events.asyncapi.yaml.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from todo_backend import tracing
from todo_backend.derived import task_public
from todo_backend.errors import PoisonEvent
from todo_backend.fields import rfc3339, utcnow
from todo_backend.models import (
    Comment,
    CommentPublic,
    MemberPublic,
    Project,
    ProjectMember,
    ProjectPublic,
    RecurringTask,
    RecurringTaskPublic,
    SettingsPublic,
    Task,
    TaskPublic,
    UserSettings,
)
from todo_backend.roles import ProjectRole


# A task event's `actor` is who made the change (a member of the task's project, say); None when the
# system did (a series' occurrence, a withdrawn successor) or for an inbox task: its owner is the user.
@dataclass(frozen=True)
class TaskCreated:
    task: Task
    actor: str | None = None


@dataclass(frozen=True)
class TaskUpdated:
    task: Task
    changed: tuple[str, ...]
    actor: str | None = None


@dataclass(frozen=True)
class TaskCompleted:
    task: Task
    changed: tuple[str, ...]
    actor: str | None = None


@dataclass(frozen=True)
class TaskDeleted:
    task: Task  # as it was before the delete
    actor: str | None = None


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
    task: Task  # its due_date is set: only a task with a due date has a reminder
    remind_at: datetime  # when it was due to be sent
    # When it was sent. Later than remind_at if the system was down, or if the task was created (or its
    # due date moved) inside its lead time: the event does not say which.
    sent_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class ProjectCreated:
    project: Project
    actor: str


@dataclass(frozen=True)
class ProjectUpdated:
    project: Project
    actor: str
    changed: tuple[str, ...]


@dataclass(frozen=True)
class ProjectDeleted:
    project: Project  # as it was before the delete
    actor: str


@dataclass(frozen=True)
class ProjectMemberAdded:
    project_id: uuid.UUID
    member: ProjectMember
    actor: str


@dataclass(frozen=True)
class ProjectMemberUpdated:
    project_id: uuid.UUID
    member: ProjectMember  # with its new role
    actor: str


@dataclass(frozen=True)
class ProjectMemberRemoved:
    project_id: uuid.UUID
    member: ProjectMember  # as it was
    actor: str


@dataclass(frozen=True)
class CommentCreated:
    comment: Comment
    project_id: uuid.UUID | None  # its task's
    actor: str


@dataclass(frozen=True)
class CommentUpdated:
    comment: Comment
    project_id: uuid.UUID | None
    actor: str


@dataclass(frozen=True)
class CommentDeleted:
    comment: Comment  # as it was
    project_id: uuid.UUID | None
    actor: str


@dataclass(frozen=True)
class SettingsReplaced:
    settings: UserSettings  # as they now are


@dataclass(frozen=True)
class CalendarTokenRotated:
    user_id: str
    rotated_at: datetime  # the token itself is in no event


Event = (
    TaskCreated
    | TaskUpdated
    | TaskCompleted
    | TaskDeleted
    | RecurringTaskCreated
    | RecurringTaskUpdated
    | RecurringTaskDeleted
    | ReminderDue
    | ProjectCreated
    | ProjectUpdated
    | ProjectDeleted
    | ProjectMemberAdded
    | ProjectMemberUpdated
    | ProjectMemberRemoved
    | CommentCreated
    | CommentUpdated
    | CommentDeleted
    | SettingsReplaced
    | CalendarTokenRotated
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
    ProjectCreated: "dev.todo.project.created",
    ProjectUpdated: "dev.todo.project.updated",
    ProjectDeleted: "dev.todo.project.deleted",
    ProjectMemberAdded: "dev.todo.project-member.added",
    ProjectMemberUpdated: "dev.todo.project-member.updated",
    ProjectMemberRemoved: "dev.todo.project-member.removed",
    CommentCreated: "dev.todo.comment.created",
    CommentUpdated: "dev.todo.comment.updated",
    CommentDeleted: "dev.todo.comment.deleted",
    SettingsReplaced: "dev.todo.user-settings.replaced",
    CalendarTokenRotated: "dev.todo.calendar-token.rotated",
}


def task_json(task: Task) -> dict[str, Any]:
    """TaskPublic's JSON, through the mapper derived from it (derived.py): the same dict (a test holds
    them equal) at a fraction of a validation's cost, which ticks pay per row."""
    return task_public({name: getattr(task, name) for name in _PUBLIC_FIELDS})


_PUBLIC_FIELDS = tuple(TaskPublic.model_fields)


def recurring_task_json(recurring: RecurringTask, next_occurrences: list[datetime]) -> dict[str, Any]:
    public = RecurringTaskPublic.model_validate(
        {**recurring.model_dump(), "next_occurrences": next_occurrences}
    )
    return public.model_dump(mode="json")


def project_json(project: Project, role: ProjectRole | None = None) -> dict[str, Any]:
    """ProjectPublic's JSON, as events carry a project; with `role`, as a member of it sees it."""
    data = ProjectPublic.model_validate(project).model_dump(mode="json")
    return data if role is None else {**data, "role": role.value}


def comment_json(comment: Comment) -> dict[str, Any]:
    return CommentPublic.model_validate(comment).model_dump(mode="json")


def member_json(member: ProjectMember) -> dict[str, Any]:
    return MemberPublic.model_validate(member).model_dump(mode="json")


def _project(task: Task) -> str | None:
    return None if task.project_id is None else str(task.project_id)


def _data(event: Event) -> tuple[str, str, str | None, dict[str, Any]]:
    """The subject (and partition key), the user (the owner of a task or series, whoever changed a
    project), the project if any, and the data of an event's CloudEvent."""
    match event:
        case TaskUpdated(task, changed, actor) | TaskCompleted(task, changed, actor):
            data: dict[str, Any] = {"task": task_json(task), "changed": list(changed)}
            return str(task.id), actor or task.user_id, _project(task), data
        case TaskCreated(task, actor) | TaskDeleted(task, actor):
            return str(task.id), actor or task.user_id, _project(task), {"task": task_json(task)}
        case ReminderDue(task, remind_at, sent_at):
            assert task.due_date is not None
            data = {
                "task": task_json(task),
                "due_at": rfc3339(task.due_date),
                "remind_at": rfc3339(remind_at),
                "late_seconds": max(0, int((sent_at - remind_at).total_seconds())),
            }
            return str(task.id), task.user_id, _project(task), data
        case RecurringTaskUpdated(recurring, changed):
            data = {"recurring_task": recurring_task_json(recurring, []), "changed": list(changed)}
            return str(recurring.id), recurring.user_id, None, data
        case RecurringTaskCreated(recurring) | RecurringTaskDeleted(recurring):
            data = {"recurring_task": recurring_task_json(recurring, [])}
            return str(recurring.id), recurring.user_id, None, data
        case ProjectCreated(project, actor) | ProjectDeleted(project, actor):
            return str(project.id), actor, str(project.id), {"project": project_json(project)}
        case ProjectUpdated(project, actor, changed):
            data = {"project": project_json(project), "changed": list(changed)}
            return str(project.id), actor, str(project.id), data
        case (
            ProjectMemberAdded(project_id, member, actor)
            | ProjectMemberUpdated(project_id, member, actor)
            | ProjectMemberRemoved(project_id, member, actor)
        ):
            data = {"project_id": str(project_id), "member": member_json(member)}
            return str(project_id), actor, str(project_id), data
        case (
            CommentCreated(comment, project_id, actor)
            | CommentUpdated(comment, project_id, actor)
            | CommentDeleted(comment, project_id, actor)
        ):
            project = None if project_id is None else str(project_id)
            data = {"comment": comment_json(comment), "project_id": project}
            return str(comment.task_id), actor, project, data
        case SettingsReplaced(settings):
            data = {"settings": SettingsPublic.model_validate(settings).model_dump(mode="json")}
            return settings.user_id, settings.user_id, None, data
        case CalendarTokenRotated(user_id, rotated_at):
            return user_id, user_id, None, {"rotated_at": rfc3339(rotated_at)}
    raise TypeError(event)


@dataclass
class OutboxRow:
    """A task_event row as a change writes it: a plain object, not a TaskEvent (whose construction
    through SQLModel's validation was most of a reminder tick's cost), inserted with one statement.
    `sequence` is the database's to assign; it is not written."""

    type: str
    source: str
    subject: str
    partition_key: str
    user_id: str
    data: dict[str, Any]
    project_id: str | None
    time: datetime
    traceparent: str | None
    tracestate: str | None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    sequence: int | None = None

    def values(self) -> dict[str, Any]:
        """The columns to insert."""
        return {name: value for name, value in vars(self).items() if name != "sequence"}


def to_outbox_row(event: Event, source: str) -> OutboxRow:
    """The outbox row (a CloudEvent, stored) for `event`, emitted by the function named `source`."""
    subject, user_id, project_id, data = _data(event)
    trace = tracing.current()
    return OutboxRow(
        type=CLOUDEVENT_TYPES[type(event)],
        source=f"/functions/{source}",
        subject=subject,
        partition_key=subject,
        user_id=user_id,
        data=data,
        project_id=project_id,
        time=utcnow(),
        traceparent=trace and trace.traceparent,
        tracestate=trace and trace.tracestate,
    )


# --- back in: a CloudEvent's data read as the event it was emitted from --------------------------------

EVENT_CLASSES: dict[str, type[Any]] = {cloudevent: kind for kind, cloudevent in CLOUDEVENT_TYPES.items()}


class _TaskData(BaseModel):
    task: TaskPublic


class _ChangedTaskData(_TaskData):
    changed: tuple[str, ...]


class _ReminderData(_TaskData):
    remind_at: AwareDatetime
    late_seconds: int = Field(ge=0)


class _RecurringData(BaseModel):
    recurring_task: RecurringTaskPublic


class _ChangedRecurringData(_RecurringData):
    changed: tuple[str, ...]


class _ProjectData(BaseModel):
    project: ProjectPublic


class _ChangedProjectData(_ProjectData):
    changed: tuple[str, ...]


class _CommentData(BaseModel):
    comment: CommentPublic
    project_id: uuid.UUID | None


class _MemberData(BaseModel):
    project_id: uuid.UUID
    member: MemberPublic


class _SettingsData(BaseModel):
    settings: SettingsPublic


class _RotatedData(BaseModel):
    rotated_at: AwareDatetime


def _task(data: _TaskData, user_id: str) -> Task:
    """The event's copy of its task (never added to a session: the database may have moved on)."""
    return Task(**data.task.model_dump(), user_id=user_id)


def _recurring(data: _RecurringData, user_id: str) -> RecurringTask:
    return RecurringTask(**data.recurring_task.model_dump(exclude={"next_occurrences"}), user_id=user_id)


def _event(kind: type[Any], data: Any, user_id: str) -> Event:
    if kind in (TaskUpdated, TaskCompleted):
        changed = _ChangedTaskData.model_validate(data)
        return kind(_task(changed, user_id), changed.changed, user_id)
    if kind in (TaskCreated, TaskDeleted):
        return kind(_task(_TaskData.model_validate(data), user_id), user_id)
    if kind is ReminderDue:
        reminder = _ReminderData.model_validate(data)
        if reminder.task.due_date is None:
            raise PoisonEvent("a reminder's task has a due date")
        sent_at = reminder.remind_at + timedelta(seconds=reminder.late_seconds)
        return ReminderDue(_task(reminder, user_id), reminder.remind_at, sent_at)
    if kind is RecurringTaskUpdated:
        recurring = _ChangedRecurringData.model_validate(data)
        return RecurringTaskUpdated(_recurring(recurring, user_id), recurring.changed)
    if kind in (RecurringTaskCreated, RecurringTaskDeleted):
        return kind(_recurring(_RecurringData.model_validate(data), user_id))
    if kind is ProjectUpdated:
        renamed = _ChangedProjectData.model_validate(data)
        return ProjectUpdated(Project(**renamed.project.model_dump()), user_id, renamed.changed)
    if kind in (ProjectCreated, ProjectDeleted):
        return kind(Project(**_ProjectData.model_validate(data).project.model_dump()), user_id)
    if kind in (CommentCreated, CommentUpdated, CommentDeleted):
        about = _CommentData.model_validate(data)
        return kind(Comment(**about.comment.model_dump()), about.project_id, user_id)
    if kind is CalendarTokenRotated:
        return CalendarTokenRotated(user_id, _RotatedData.model_validate(data).rotated_at)
    if kind is SettingsReplaced:
        settings = _SettingsData.model_validate(data).settings
        return SettingsReplaced(UserSettings(user_id=user_id, **settings.model_dump()))
    membership = _MemberData.model_validate(data)
    member = ProjectMember(project_id=membership.project_id, **membership.member.model_dump())
    return kind(membership.project_id, member, user_id)


def from_cloudevent(cloudevent_type: str, user_id: str, data: Any) -> Event:
    """The event a CloudEvent of `cloudevent_type`, owned by `user_id`, carries in `data`.

    Fields beyond the ones the type defines are ignored, so an event from a newer emitter still reads;
    an unknown type, or data without what its type promises, is a PoisonEvent.
    """
    kind = EVENT_CLASSES.get(cloudevent_type)
    if kind is None:
        raise PoisonEvent(f"{cloudevent_type!r} is not an event type of this system")
    try:
        return _event(kind, data, user_id)
    except ValidationError as exc:
        raise PoisonEvent(f"not a {cloudevent_type} event: {exc.errors(include_url=False)}") from exc


def owned_resource(event: Event) -> Task | RecurringTask:
    """The task or series an event is about, whose owner must be the event's user. A project's events
    name neither: their user is whoever acted, and no consumer takes them on that user's word."""
    match event:
        case (
            RecurringTaskCreated(recurring)
            | RecurringTaskUpdated(recurring)
            | RecurringTaskDeleted(recurring)
        ):
            return recurring
        case (
            TaskCreated(task)
            | TaskUpdated(task)
            | TaskCompleted(task)
            | TaskDeleted(task)
            | ReminderDue(task)
        ):
            return task
    raise PoisonEvent(f"a {CLOUDEVENT_TYPES[type(event)]} event names no task or series")
