"""An inbound CloudEvent is read back into the event that was emitted: every type, out through the outbox
row and the structured JSON, and in again; and data that is not what its type promises is a PoisonEvent,
never another error."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cloudevents.http import CloudEvent
from hypothesis import given
from hypothesis import strategies as st

from todo_backend import events, stored
from todo_backend.catalog import FUNCTIONS, Function
from todo_backend.consumers import InboundEvent, receive
from todo_backend.errors import PoisonEvent
from todo_backend.fields import Priority
from todo_backend.models import Anchor, Comment, Project, ProjectMember, RecurringTask, Task, UserSettings
from todo_backend.roles import ProjectRole

AT = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
EVERY_TYPE = Function("every-type", "test", event_types=tuple(events.EVENT_CLASSES))


def a_task() -> Task:
    return Task(
        id=uuid.uuid4(),
        user_id="ada",
        title="Water the plants",
        description="the ferns",
        due_date=AT,
        priority=Priority.high,
        tags=["home"],
        remind_before_minutes=30,
        recurring_task_id=uuid.uuid4(),
        occurrence_at=AT,
        created_at=AT - timedelta(days=1),
        updated_at=AT - timedelta(hours=1),
        version=3,
    )


def a_series() -> RecurringTask:
    return RecurringTask(
        id=uuid.uuid4(),
        user_id="ada",
        title="Stand-up",
        schedule="0 9 * * 1-5",
        timezone="Europe/Paris",
        anchor=Anchor.completion,
        starts_at=AT,
        created_at=AT,
        updated_at=AT,
    )


def a_project() -> Project:
    return Project(id=uuid.uuid4(), name="Launch", color="#1A2B3C", created_at=AT, updated_at=AT, version=2)


def a_member(project_id: uuid.UUID) -> ProjectMember:
    return ProjectMember(project_id=project_id, user_id="grace", role=ProjectRole.editor, added_at=AT)


def a_comment() -> Comment:
    return Comment(task_id=uuid.uuid4(), author_id="ada", body="ok", created_at=AT, updated_at=AT, version=1)


PROJECT = uuid.uuid4()
EMITTED: list[events.Event] = [
    events.TaskCreated(a_task()),
    events.TaskUpdated(a_task(), ("title", "tags")),
    events.TaskCompleted(a_task(), ("completed",)),
    events.TaskDeleted(a_task()),
    events.RecurringTaskCreated(a_series()),
    events.RecurringTaskUpdated(a_series(), ("schedule",)),
    events.RecurringTaskDeleted(a_series()),
    events.ReminderDue(a_task(), AT - timedelta(minutes=30), sent_at=AT - timedelta(minutes=20)),
    events.ProjectCreated(a_project(), "ada"),
    events.ProjectUpdated(a_project(), "ada", ("name", "color")),
    events.ProjectDeleted(a_project(), "ada"),
    events.ProjectMemberAdded(PROJECT, a_member(PROJECT), "ada"),
    events.ProjectMemberUpdated(PROJECT, a_member(PROJECT), "ada"),
    events.ProjectMemberRemoved(PROJECT, a_member(PROJECT), "ada"),
    events.CommentCreated(a_comment(), PROJECT, "ada"),
    events.CommentUpdated(a_comment(), None, "ada"),
    events.CommentDeleted(a_comment(), PROJECT, "ada"),
    events.SettingsReplaced(UserSettings(user_id="ada", timezone="Europe/Berlin", locale="de-AT")),
    events.CalendarTokenRotated("ada", AT),
]
NO_TASK_OR_SERIES = (
    events.ProjectCreated,
    events.ProjectUpdated,
    events.ProjectDeleted,
    events.ProjectMemberAdded,
    events.ProjectMemberUpdated,
    events.ProjectMemberRemoved,
    events.CommentCreated,
    events.CommentUpdated,
    events.CommentDeleted,
    events.SettingsReplaced,
    events.CalendarTokenRotated,
)


def as_received(event: events.Event) -> CloudEvent:
    row = events.to_outbox_row(event, "emitter")
    row.sequence = 1
    attributes = stored.to_cloudevent_json(row)
    return CloudEvent(attributes, attributes.pop("data"))


def test_every_emitted_type_has_a_way_back_in() -> None:
    assert {type(event) for event in EMITTED} == set(events.CLOUDEVENT_TYPES)
    consumed = {t for fn in FUNCTIONS for t in fn.event_types}
    assert consumed <= set(events.EVENT_CLASSES)


@pytest.mark.parametrize("emitted", EMITTED, ids=lambda e: type(e).__name__)
def test_an_event_reads_back_as_the_event_that_was_emitted(emitted: events.Event) -> None:
    inbound = receive(EVERY_TYPE, as_received(emitted))
    assert type(inbound.event) is type(emitted)
    assert inbound.user_id == "ada"
    # What the event says is what was emitted: its data, rendered again from the typed copy, is equal.
    again = events.to_outbox_row(inbound.event, "emitter")
    assert again.data == events.to_outbox_row(emitted, "emitter").data
    assert again.project_id == events.to_outbox_row(emitted, "emitter").project_id
    if isinstance(emitted, NO_TASK_OR_SERIES):
        with pytest.raises(PoisonEvent):  # no task or series to hold the event's user to
            events.owned_resource(inbound.event)
        return
    resource = events.owned_resource(inbound.event)
    assert resource.id == events.owned_resource(emitted).id and resource.user_id == "ada"


def test_a_reminder_says_when_it_was_sent_to_the_second() -> None:
    [reminder] = [event for event in EMITTED if isinstance(event, events.ReminderDue)]
    inbound = receive(EVERY_TYPE, as_received(reminder))
    assert isinstance(inbound.event, events.ReminderDue)
    assert inbound.event.sent_at == AT - timedelta(minutes=20)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


def mutated(data: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    """`data` with the value at `path` replaced (or the key removed, for a value of ...)."""
    copy = dict(data)
    key, rest = path[0], path[1:]
    if rest and isinstance(copy.get(key), dict):
        copy[key] = mutated(copy[key], rest, value)
    elif value is ...:
        copy.pop(key, None)
    else:
        copy[key] = value
    return copy


@given(
    emitted=st.sampled_from(EMITTED),
    field=st.sampled_from(
        [
            *("task", "recurring_task", "changed", "remind_at", "late_seconds", "due_at", "task.id"),
            *(
                "task.title",
                "task.due_date",
                "task.version",
                "recurring_task.anchor",
                "recurring_task.starts_at",
            ),
            *("project", "project.name", "project.version", "project_id", "member", "member.role"),
            *("comment", "comment.body", "comment.task_id"),
        ]
    ),
    value=json_values | st.just(...),
)
def test_hostile_data_is_a_poison_event_or_a_valid_event_never_another_error(
    emitted: events.Event, field: str, value: Any
) -> None:
    received = as_received(emitted)
    data = mutated(received.get_data(), field.split("."), value)
    try:
        inbound = InboundEvent.parse(CloudEvent(received.get_attributes(), data))
    except PoisonEvent:
        return
    assert type(inbound.event) is type(emitted)
    assert inbound.user_id == "ada"
    if not isinstance(emitted, NO_TASK_OR_SERIES):
        assert events.owned_resource(inbound.event).user_id == "ada"
