"""What a reminder says: the event's data read as a typed message, the notification text and the email."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from todo_backend.errors import PoisonEvent
from todo_backend.events import ReminderDue, from_cloudevent, task_json
from todo_backend.models import Task
from todo_backend.notifications import due_text, reminder_email, span

DUE = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def reminder_data(**overrides: Any) -> dict[str, Any]:
    """A reminder.due event's data, as check-due-tasks emits it."""
    task = Task(id=uuid.uuid4(), user_id="user-1", title="Water the plants", due_date=DUE)
    data: dict[str, Any] = {
        "task": task_json(task),
        "due_at": "2030-06-01T12:00:00.000000Z",
        "remind_at": "2030-06-01T10:00:00.000000Z",
        "late_seconds": 0,
    }
    data.update(overrides)
    return data


def a_reminder(data: dict[str, Any]) -> ReminderDue:
    event = from_cloudevent("dev.todo.reminder.due", "user-1", data)
    assert isinstance(event, ReminderDue)
    return event


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0, "less than a minute"),
        (29, "less than a minute"),
        (60, "1 minute"),
        (59 * 60 + 40, "1 hour"),  # to the nearest minute
        (45 * 60, "45 minutes"),
        (90 * 60, "1 hour 30 minutes"),
        (2 * 3600, "2 hours"),
        (86_400, "1 day"),
        (86_400 + 2 * 3600 + 5 * 60, "1 day 2 hours"),  # at most two units
        (3 * 86_400 + 60, "3 days 1 minute"),
        (-5 * 60, "5 minutes"),
    ],
)
def test_durations_are_said_in_at_most_two_units_to_the_minute(seconds: float, said: str) -> None:
    assert span(seconds) == said


def test_the_text_says_when_the_task_is_due_in_utc_and_how_far_off_that_was() -> None:
    assert due_text(DUE, DUE - timedelta(minutes=30)) == "Due Sat 1 Jun 2030, 12:00 UTC (in 30 minutes)"
    assert due_text(DUE, DUE - timedelta(days=1)) == "Due Sat 1 Jun 2030, 12:00 UTC (in 1 day)"
    assert due_text(DUE, DUE - timedelta(seconds=10)) == "Due now (Sat 1 Jun 2030, 12:00 UTC)"
    late = due_text(DUE, DUE + timedelta(hours=3))
    assert late == "Overdue: was due Sat 1 Jun 2030, 12:00 UTC (3 hours ago)"


def test_a_due_date_with_an_offset_is_shown_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    due = datetime(2030, 6, 1, 14, 0, tzinfo=plus_two)
    assert due_text(due, due - timedelta(hours=1)).startswith("Due Sat 1 Jun 2030, 12:00 UTC")


def test_a_reminder_is_read_from_the_event_data_ignoring_fields_it_does_not_need() -> None:
    data = reminder_data(late_seconds=7200, extra="ignored")
    reminder = a_reminder(data)
    assert str(reminder.task.id) == data["task"]["id"]
    assert (reminder.task.title, reminder.task.due_date, reminder.task.user_id) == (
        "Water the plants",
        DUE,
        "user-1",
    )


def test_the_reminder_went_out_when_it_was_due_plus_its_lateness() -> None:
    reminder = a_reminder(reminder_data(late_seconds=600))
    assert reminder.sent_at == datetime(2030, 6, 1, 10, 10, tzinfo=UTC)


def a_task_copy(**overrides: Any) -> dict[str, Any]:
    return {**reminder_data()["task"], **overrides}


@pytest.mark.parametrize(
    "data",
    [
        {},
        reminder_data(task=None),
        reminder_data(task={"title": "no id"}),
        reminder_data(task=a_task_copy(id="not-a-uuid")),
        reminder_data(task=a_task_copy(due_date=None)),  # no due date: nothing to remind of
        reminder_data(remind_at="2030-06-01T10:00:00"),  # naive: not an instant
        reminder_data(late_seconds=-1),
    ],
)
def test_data_that_is_not_a_reminder_is_a_poison_event(data: dict[str, Any]) -> None:
    with pytest.raises(PoisonEvent):
        from_cloudevent("dev.todo.reminder.due", "user-1", data)


def test_the_email_escapes_the_title_in_its_html_and_keeps_the_subject_to_one_short_line() -> None:
    reminder = a_reminder(reminder_data(task=a_task_copy(title="<b>Tax</b> &\nfile")))
    email = reminder_email("ada@example.com", reminder)  # sent at 10:00, two hours ahead
    assert email.to == "ada@example.com"
    assert email.subject == "Reminder: <b>Tax</b> & file"
    assert "<strong>&lt;b&gt;Tax&lt;/b&gt; &amp;\nfile</strong>" in email.html
    assert "Due Sat 1 Jun 2030, 12:00 UTC (in 2 hours)" in email.html

    long = a_reminder(reminder_data(task=a_task_copy(title="x" * 500)))
    subject = reminder_email("ada@example.com", long).subject
    assert len(subject) == 150 and subject.endswith("…")
