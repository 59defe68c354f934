"""SQLModel models: one family per entity (Base, Create, Update, table, Public).

Datetimes are aware everywhere: inputs must carry an offset, columns are timestamptz, outputs are UTC.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, StrictBool, field_validator
from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Identity, Index, Text, false, text
from sqlalchemy.dialects.postgresql import ARRAY, ENUM, JSONB
from sqlmodel import Field, SQLModel

from todo_backend.fields import (
    Color,
    CommentBody,
    Description,
    Input,
    Instant,
    MaxOccurrences,
    Priority,
    ProjectName,
    RemindBefore,
    Tags,
    Title,
    UserId,
    UtcDatetime,
    utcnow,
)
from todo_backend.roles import ProjectRole

metadata = SQLModel.metadata


def _tz() -> DateTime:
    return DateTime(timezone=True)


priority_enum = ENUM(Priority, name="task_priority", values_callable=lambda e: [m.value for m in e])


class _Input(SQLModel, Input):
    """A request body (fields.Input's rules) declared in SQLModel."""


def _omit_null(*fields: str) -> Callable[[dict[str, Any]], None]:
    """JSON schema edit: these PATCH fields may be left out but not sent as null (`_not_null` refuses
    it). Done on the schema, not the type: `X | None` keeps error locations plain (`tags`, not a union
    member's name)."""

    def edit(schema: dict[str, Any]) -> None:
        for name in fields:
            prop = schema["properties"][name]
            (branch,) = [s for s in prop.pop("anyOf") if s != {"type": "null"}]
            prop.update(branch)

    return edit


class TaskBase(SQLModel):
    title: str
    description: str = ""
    due_date: datetime | None = None
    priority: Priority = Priority.medium
    tags: list[str] = Field(default_factory=list)
    remind_before_minutes: int | None = None


class TaskCreate(_Input):
    """POST body, and PUT body (a PUT replaces every editable field; omitted ones reset)."""

    title: Title
    description: Description = ""
    due_date: Instant | None = None
    priority: Priority = Priority.medium
    tags: Tags = Field(default_factory=list)
    remind_before_minutes: RemindBefore | None = None
    completed: StrictBool = False
    # A project's task (its members see it), else the creator's inbox (theirs alone). Set at creation.
    project_id: uuid.UUID | None = None
    # Who it is assigned to: a member of its project, or for an inbox task its owner.
    assignee_id: UserId | None = None
    # A subtask's parent: in the same project (or inbox), at most MAX_DEPTH ancestors above it. A
    # subtask joins its parent's project when the request names none.
    parent_id: uuid.UUID | None = None


_TASK_NOT_NULL = ("title", "priority", "tags", "completed", "description", "project_id")


class TaskUpdate(_Input):
    """PATCH body: every field optional; only the fields sent change."""

    title: Title | None = None
    description: Description | None = None
    due_date: Instant | None = None
    priority: Priority | None = None
    tags: Tags | None = None
    remind_before_minutes: RemindBefore | None = None
    completed: StrictBool | None = None
    assignee_id: UserId | None = None  # null: nobody
    parent_id: uuid.UUID | None = None  # null: a top-level task
    # Another project (with the task's subtasks): editor rights on both are needed.
    project_id: uuid.UUID | None = None

    model_config = ConfigDict(json_schema_extra=_omit_null(*_TASK_NOT_NULL))  # type: ignore[assignment]

    @field_validator(*_TASK_NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # null means "clear" only for the nullable fields (due_date, remind_before_minutes).
        if value is None:
            raise ValueError("must not be null")
        return value


class Task(TaskBase, table=True):
    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_user_created", "user_id", "created_at", "id"),
        Index("ix_task_user_due", "user_id", "due_date", "id"),
        Index("ix_task_user_priority", "user_id", "priority", "id"),
        Index("ix_task_user_title", "user_id", text("lower(title)"), "id"),
        # The tasks assigned to someone (list-tasks' `assignee`).
        Index(
            "ix_task_assignee",
            "assignee_id",
            "created_at",
            "id",
            postgresql_where=text("assignee_id IS NOT NULL"),
        ),
        # A task's subtasks (cascades, moves, list-tasks' `parent`).
        Index(
            "ix_task_parent", "parent_id", "created_at", "id", postgresql_where=text("parent_id IS NOT NULL")
        ),
        # A project's tasks (lists, deleting the project).
        Index(
            "ix_task_project",
            "project_id",
            "created_at",
            "id",
            postgresql_where=text("project_id IS NOT NULL"),
        ),
        Index("ix_task_tags", "tags", postgresql_using="gin"),
        # Each occurrence of a series exists once, however many materializers or duplicate events race.
        Index("uq_task_occurrence", "recurring_task_id", "occurrence_at", unique=True),
        # Room in each page, so that updates of unindexed columns (completing, reminding) stay on their
        # page and write no index entries (HOT updates). The reminder checker's scan is ArmedReminder's.
        {"postgresql_with": {"fillfactor": 90}},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: str = Field(sa_column=Column(Text, nullable=False))
    title: str = Field(sa_column=Column(Text, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    completed: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    completed_at: datetime | None = Field(default=None, sa_type=_tz())
    due_date: datetime | None = Field(default=None, sa_type=_tz())
    priority: Priority = Field(
        default=Priority.medium, sa_column=Column(priority_enum, nullable=False, server_default="medium")
    )
    tags: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'")),
    )
    remind_before_minutes: int | None = None
    reminded_at: datetime | None = Field(default=None, sa_type=_tz())
    # due_date - remind_before, fixed when either changes: when it is armed to fire (ArmedReminder).
    remind_at: datetime | None = Field(default=None, sa_type=_tz())
    recurring_task_id: uuid.UUID | None = None
    occurrence_at: datetime | None = Field(default=None, sa_type=_tz())
    project_id: uuid.UUID | None = Field(default=None, foreign_key="project.id")
    assignee_id: str | None = Field(default=None, sa_column=Column(Text))
    parent_id: uuid.UUID | None = Field(default=None, foreign_key="task.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class ArmedReminder(SQLModel, table=True):
    """A task's reminder waiting to fall due: the task is open, has a remind_at and was not reminded
    since it was set. Kept so by a trigger on task (migration 0014), in the writer's statement, whoever
    writes: the checker scans these few narrow rows by `fire_at`, and claiming a reminder updates only
    the task's unindexed reminded_at."""

    __tablename__ = "armed_reminder"
    __table_args__ = (Index("ix_armed_reminder_fire_at", "fire_at"),)

    task_id: uuid.UUID = Field(sa_column=Column(ForeignKey("task.id", ondelete="CASCADE"), primary_key=True))
    fire_at: datetime = Field(sa_type=_tz(), nullable=False)  # the task's remind_at


class TaskPublic(SQLModel):
    id: uuid.UUID
    title: str
    description: str
    completed: bool
    completed_at: UtcDatetime | None
    due_date: UtcDatetime | None
    priority: Priority
    tags: list[str]
    remind_before_minutes: int | None
    reminded_at: UtcDatetime | None
    recurring_task_id: uuid.UUID | None
    occurrence_at: UtcDatetime | None
    project_id: uuid.UUID | None
    assignee_id: str | None
    parent_id: uuid.UUID | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    version: int


class TaskEvent(SQLModel, table=True):
    """The audit log: every CloudEvent a change produced, in commit order. Written once, never updated.

    Its rows not yet on the broker are listed in `outbox` (UnpublishedEvent): an insert trigger
    (migration 0007) adds every new row there, whoever writes it, in the writer's statement and
    transaction."""

    __tablename__ = "task_event"
    __table_args__ = (
        # A task's history: its members see events their actors wrote, so the subject leads.
        Index("ix_task_event_subject", "subject", "sequence"),
        # A project's activity feed (GET /api/projects/{id}/events), oldest first.
        Index(
            "ix_task_event_project",
            "project_id",
            "sequence",
            postgresql_where=text("project_id IS NOT NULL"),
        ),
    )

    sequence: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=True), primary_key=True),
    )
    id: uuid.UUID = Field(default_factory=uuid.uuid4, unique=True)
    type: str = Field(sa_column=Column(Text, nullable=False))
    source: str = Field(sa_column=Column(Text, nullable=False))
    subject: str = Field(sa_column=Column(Text, nullable=False))
    time: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)
    partition_key: str = Field(sa_column=Column(Text, nullable=False))
    user_id: str = Field(sa_column=Column(Text, nullable=False))
    data: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    # The project the event is about, if any: the CloudEvent's `projectid`, and the activity feed's key.
    project_id: str | None = Field(default=None, sa_column=Column(Text))
    # W3C Trace Context of the span that wrote it (tracing.py): the CloudEvent's distributed-tracing
    # extension, so the consumers continue the trace of the request that made the change.
    traceparent: str | None = Field(default=None, sa_column=Column(Text))
    tracestate: str | None = Field(default=None, sa_column=Column(Text))


class UnpublishedEvent(SQLModel, table=True):
    """The outbox: a task_event row waiting for the broker. Publishing deletes it, in the transaction
    that held the key's lock while the broker acknowledged (relay.py). A narrow row of its own, so that
    marking a batch published deletes small rows instead of writing a new version of each wide event
    row and its index entries."""

    __tablename__ = "outbox"
    # The relay's scans: the oldest waiting rows (the primary key), and the waiting rows of a key.
    __table_args__ = (Index("ix_outbox_partition_key", "partition_key", "sequence"),)

    sequence: int = Field(sa_column=Column(BigInteger, ForeignKey("task_event.sequence"), primary_key=True))
    partition_key: str = Field(sa_column=Column(Text, nullable=False))


class IdempotencyKey(SQLModel, table=True):
    """A create request's key and its first response, kept per user for the retry window."""

    __tablename__ = "idempotency_key"
    __table_args__ = (Index("ix_idempotency_key_created_at", "created_at"),)  # pruning (retention.py)

    user_id: str = Field(sa_column=Column(Text, primary_key=True))
    key: str = Field(sa_column=Column(Text, primary_key=True))
    request_hash: str = Field(sa_column=Column(Text, nullable=False))
    status_code: int | None = None
    response: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    created_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)


class ProcessedEvent(SQLModel, table=True):
    """A consumer's tracking row: (consumer, event id) written with the effect, so a redelivery is a no-op.

    Each consumer keeps its own rows: one consumer having handled an event says nothing of another.
    """

    __tablename__ = "processed_event"
    __table_args__ = (Index("ix_processed_event_processed_at", "processed_at"),)  # pruning (retention.py)

    consumer: str = Field(sa_column=Column(Text, primary_key=True))
    event_id: uuid.UUID = Field(primary_key=True)
    processed_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)


class WebhookCreate(_Input):
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    event_types: Annotated[list[str], Field(min_length=1, max_length=20)]
    secret: Annotated[str, Field(min_length=16, max_length=256)] | None = None


class Webhook(SQLModel, table=True):
    __tablename__ = "webhook"
    __table_args__ = (Index("ix_webhook_user", "user_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: str = Field(sa_column=Column(Text, nullable=False))
    url: str = Field(sa_column=Column(Text, nullable=False))
    event_types: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    secret: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)


class WebhookPublic(SQLModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    created_at: UtcDatetime


class WebhookDelivery(SQLModel, table=True):
    """One event to one subscription: its own row, so a receiver that is down blocks nobody else."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        Index("uq_webhook_delivery_event", "webhook_id", "event_id", unique=True),
        Index("ix_webhook_delivery_list", "webhook_id", "created_at", "id"),
        Index("ix_webhook_delivery_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        # Pruning finished deliveries, oldest first (retention.py).
        Index(
            "ix_webhook_delivery_finished",
            "created_at",
            postgresql_where=text("status IN ('succeeded', 'failed')"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)  # X-Todo-Delivery
    webhook_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("webhook.id", ondelete="CASCADE"), nullable=False)
    )
    user_id: str = Field(sa_column=Column(Text, nullable=False))
    event_id: uuid.UUID
    event_type: str = Field(sa_column=Column(Text, nullable=False))
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))  # structured CloudEvent
    status: str = Field(default="pending", sa_column=Column(Text, nullable=False))  # pending|succeeded|failed
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=_tz())
    last_attempt_at: datetime | None = Field(default=None, sa_type=_tz())
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    response_excerpt: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)


class WebhookDeliveryPublic(SQLModel):
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: str
    attempts: int
    next_attempt_at: UtcDatetime | None
    last_attempt_at: UtcDatetime | None
    last_status_code: int | None
    last_error: str | None
    response_excerpt: str | None
    created_at: UtcDatetime


class Anchor(enum.StrEnum):
    schedule = "schedule"  # the next occurrence exists as soon as the previous one's time has passed
    completion = "completion"  # one open occurrence; completing it schedules the next


def _valid_schedule(value: str) -> str:
    from todo_backend.recurrence import InvalidSchedule, Schedule

    try:
        Schedule.parse(value).next_after(utcnow())
    except InvalidSchedule:
        raise
    except (ValueError, KeyError) as exc:  # croniter's "failed to find next date"
        raise ValueError("the schedule never fires") from exc
    return " ".join(value.split())


def _valid_timezone(value: str) -> str:
    from todo_backend.recurrence import zone

    zone(value)
    return value


CronSchedule = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_valid_schedule)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_valid_timezone)]


class RecurringTaskCreate(_Input):
    """POST body, and PUT body (omitted fields reset to their defaults)."""

    title: Title
    description: Description = ""
    priority: Priority = Priority.medium
    tags: Tags = Field(default_factory=list)
    remind_before_minutes: RemindBefore | None = None
    schedule: CronSchedule
    timezone: TimeZone = "UTC"
    anchor: Anchor = Anchor.schedule
    starts_at: Instant | None = None
    until: Instant | None = None
    max_occurrences: MaxOccurrences | None = None
    paused: StrictBool = False
    # Its occurrences' project (its owner an editor there) and assignee (a member, or for the owner's
    # inbox the owner); null: the owner's inbox, nobody.
    project_id: uuid.UUID | None = None
    assignee_id: UserId | None = None


_SERIES_NOT_NULL = (
    "title",
    "description",
    "priority",
    "tags",
    "schedule",
    "timezone",
    "anchor",
    "starts_at",
    "paused",
)


class RecurringTaskUpdate(_Input):
    """PATCH body: only the fields sent change; null clears the nullable ones."""

    title: Title | None = None
    description: Description | None = None
    priority: Priority | None = None
    tags: Tags | None = None
    remind_before_minutes: RemindBefore | None = None
    schedule: CronSchedule | None = None
    timezone: TimeZone | None = None
    anchor: Anchor | None = None
    starts_at: Instant | None = None
    until: Instant | None = None
    max_occurrences: MaxOccurrences | None = None
    paused: StrictBool | None = None
    project_id: uuid.UUID | None = None  # null: the owner's inbox, for the occurrences to come
    assignee_id: UserId | None = None  # null: nobody

    model_config = ConfigDict(json_schema_extra=_omit_null(*_SERIES_NOT_NULL))  # type: ignore[assignment]

    @field_validator(*_SERIES_NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value


anchor_enum = ENUM(Anchor, name="recurrence_anchor", values_callable=lambda e: [m.value for m in e])


class RecurringTask(SQLModel, table=True):
    __tablename__ = "recurring_task"
    __table_args__ = (
        Index("ix_recurring_task_user_created", "user_id", "created_at", "id"),
        # The materializer's scan: active schedule-anchored series whose upcoming occurrence has passed.
        Index(
            "ix_recurring_task_due",
            "next_occurrence_at",
            postgresql_where=text("NOT paused AND anchor = 'schedule' AND next_occurrence_at IS NOT NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: str = Field(sa_column=Column(Text, nullable=False))
    title: str = Field(sa_column=Column(Text, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    priority: Priority = Field(
        default=Priority.medium, sa_column=Column(priority_enum, nullable=False, server_default="medium")
    )
    tags: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    )
    remind_before_minutes: int | None = None
    schedule: str = Field(sa_column=Column(Text, nullable=False))
    timezone: str = Field(sa_column=Column(Text, nullable=False))
    anchor: Anchor = Field(default=Anchor.schedule, sa_column=Column(anchor_enum, nullable=False))
    starts_at: datetime = Field(sa_type=_tz(), nullable=False)
    until: datetime | None = Field(default=None, sa_type=_tz())
    max_occurrences: int | None = None
    paused: bool = False
    occurrences_created: int = 0
    occurrences_skipped: int = 0  # missed while the materializer was down (catch-up creates only the next)
    # The upcoming occurrence (already created); null when the series has ended or has none open.
    next_occurrence_at: datetime | None = Field(default=None, sa_type=_tz())
    # No foreign key: deleting a project never waits on a series' lock (which the materializer holds
    # while it locks the project); a series whose project is gone is paused when it next fires.
    project_id: uuid.UUID | None = None
    assignee_id: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)
    version: int = 1


class RecurringTaskPublic(SQLModel):
    id: uuid.UUID
    title: str
    description: str
    priority: Priority
    tags: list[str]
    remind_before_minutes: int | None
    schedule: str
    timezone: str
    anchor: Anchor
    starts_at: UtcDatetime
    until: UtcDatetime | None
    max_occurrences: int | None
    paused: bool
    project_id: uuid.UUID | None
    assignee_id: str | None
    next_occurrences: list[UtcDatetime] = Field(default_factory=list)
    occurrences_created: int
    occurrences_skipped: int
    created_at: UtcDatetime
    updated_at: UtcDatetime
    version: int


class NotificationKind(enum.StrEnum):
    reminder = "reminder"  # a task's reminder fell due: to its assignee, else its creator
    assigned = "assigned"  # someone else assigned a task to the user
    added_to_project = "added_to_project"  # someone else made the user a member of a project


class Notification(SQLModel, table=True):
    """An in-app notification: at most one per event, however often the event is delivered."""

    __tablename__ = "notification"
    __table_args__ = (
        Index("ix_notification_user_created", "user_id", "created_at", "id"),
        Index(
            "ix_notification_user_unread",
            "user_id",
            "created_at",
            "id",
            postgresql_where=text("read_at IS NULL"),
        ),
        # Pruning read notifications, oldest read first (retention.py).
        Index("ix_notification_read", "read_at", postgresql_where=text("read_at IS NOT NULL")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: str = Field(sa_column=Column(Text, nullable=False))
    event_id: uuid.UUID = Field(unique=True)
    kind: NotificationKind = Field(
        default=NotificationKind.reminder,
        sa_column=Column(Text, nullable=False, server_default=NotificationKind.reminder.value),
    )
    task_id: uuid.UUID | None = None  # a reminder's or an assignment's
    project_id: uuid.UUID | None = None  # the project of the task, or the one the user was added to
    title: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    due_at: datetime | None = Field(default=None, sa_type=_tz())  # a reminder's
    created_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)
    read_at: datetime | None = Field(default=None, sa_type=_tz())


class NotificationPublic(SQLModel):
    id: uuid.UUID
    kind: NotificationKind
    task_id: uuid.UUID | None
    project_id: uuid.UUID | None
    title: str
    body: str
    due_at: UtcDatetime | None
    created_at: UtcDatetime
    read_at: UtcDatetime | None


# --- a user's settings ----------------------------------------------------------------------------


def _valid_locale(value: str) -> str:
    from todo_backend.locales import locale_tag

    return locale_tag(value)


LocaleTag = Annotated[str, Field(min_length=1, max_length=35), AfterValidator(_valid_locale)]


class SettingsWrite(_Input):
    """PUT body: every setting; one left out is reset to its default."""

    timezone: TimeZone = "UTC"
    locale: LocaleTag = "en"


class UserSettings(SQLModel, table=True):
    """What a user set; a user who never did has the defaults (SettingsWrite's) and no row."""

    __tablename__ = "user_settings"

    user_id: str = Field(sa_column=Column(Text, primary_key=True))
    timezone: str = Field(default="UTC", sa_column=Column(Text, nullable=False))
    locale: str = Field(default="en", sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)


class SettingsPublic(SQLModel):
    timezone: str
    locale: str


class CalendarToken(SQLModel, table=True):
    """The secret that opens a user's calendar feed, as its SHA-256 only (calendar_feed.py)."""

    __tablename__ = "calendar_token"

    user_id: str = Field(sa_column=Column(Text, primary_key=True))
    token_sha256: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    rotated_at: datetime = Field(sa_type=_tz(), nullable=False)


class Snooze(_Input):
    """POST /api/notifications/{id}/snooze: remind again in `minutes`, or at `until`; one of the two."""

    minutes: Annotated[int, Field(ge=1, le=10_080)] | None = None
    until: Instant | None = None


# --- projects -------------------------------------------------------------------------------------


project_role_enum = ENUM(ProjectRole, name="project_role", values_callable=lambda e: [m.value for m in e])


class ProjectCreate(_Input):
    name: ProjectName
    color: Color | None = None


class ProjectUpdate(_Input):
    """PATCH body: only the fields sent change; `color: null` clears the color."""

    name: ProjectName | None = None
    color: Color | None = None

    model_config = ConfigDict(json_schema_extra=_omit_null("name"))  # type: ignore[assignment]

    @field_validator("name", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value


class Project(SQLModel, table=True):
    __tablename__ = "project"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(sa_column=Column(Text, nullable=False))
    color: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class ProjectPublic(SQLModel):
    """A project as its events carry it."""

    id: uuid.UUID
    name: str
    color: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    version: int


class MyProject(ProjectPublic):
    """A project as the API returns it to a member: with that member's role."""

    role: ProjectRole


class ProjectMember(SQLModel, table=True):
    """A user's membership of a project, with their role. Deleting the project deletes its members."""

    __tablename__ = "project_member"
    __table_args__ = (
        # The projects of a user (list-projects, every membership check of theirs).
        Index("ix_project_member_user", "user_id", "project_id"),
        # At most one owner per project; the handlers keep at least one (projects.py).
        Index("uq_project_member_owner", "project_id", unique=True, postgresql_where=text("role = 'owner'")),
    )

    project_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("project.id", ondelete="CASCADE"), primary_key=True)
    )
    user_id: str = Field(sa_column=Column(Text, primary_key=True))
    role: ProjectRole = Field(sa_column=Column(project_role_enum, nullable=False))
    added_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)


class MemberPublic(SQLModel):
    user_id: str
    role: ProjectRole
    added_at: UtcDatetime


class MemberAdd(_Input):
    user_id: UserId
    role: ProjectRole


class MemberUpdate(_Input):
    role: ProjectRole


class ProjectTransfer(_Input):
    user_id: UserId


# --- comments -------------------------------------------------------------------------------------


class CommentWrite(_Input):
    """POST and PATCH body."""

    body: CommentBody


class Comment(SQLModel, table=True):
    """A comment on a task; deleting the task deletes its comments."""

    __tablename__ = "comment"
    __table_args__ = (Index("ix_comment_task_created", "task_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    task_id: uuid.UUID = Field(sa_column=Column(ForeignKey("task.id", ondelete="CASCADE"), nullable=False))
    author_id: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=_tz(), nullable=False)
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class CommentPublic(SQLModel):
    id: uuid.UUID
    task_id: uuid.UUID
    author_id: str
    body: str
    created_at: UtcDatetime
    updated_at: UtcDatetime
    version: int


def touch(row: Task | RecurringTask | Project | Comment) -> None:
    """A changed row: updated now, at its next version (its next ETag)."""
    row.updated_at = utcnow()
    row.version += 1
