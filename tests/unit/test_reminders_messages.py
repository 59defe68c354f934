"""What a reminder says: the event's data read as a typed message, the notification text and the email."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from todo_backend.consumers import InboundEvent, PoisonEvent
from todo_backend.notifications import Reminder, due_text, reminder_email, span

DUE = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def an_event(data: dict[str, Any], time: datetime | None = DUE - timedelta(hours=2)) -> InboundEvent:
    return InboundEvent(
        id=uuid.uuid4(),
        type="dev.todo.reminder.due",
        source="/functions/check-due-tasks",
        subject="s",
        user_id="user-1",
        time=time,
        data=data,
        attributes={},
    )


def reminder_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "task": {"id": str(uuid.uuid4()), "title": "Water the plants", "priority": "high"},
        "due_at": "2030-06-01T12:00:00.000000Z",
        "remind_at": "2030-06-01T10:00:00.000000Z",
        "late_seconds": 0,
    }
    data.update(overrides)
    return data


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
    reminder = Reminder.of(an_event(data))
    assert str(reminder.task.id) == data["task"]["id"]
    assert (reminder.task.title, reminder.due_at, reminder.late_seconds) == ("Water the plants", DUE, 7200)


def test_without_an_event_time_the_reminder_went_out_when_due_plus_its_lateness() -> None:
    event = an_event(reminder_data(late_seconds=600), time=None)
    reminder = Reminder.of(event)
    assert reminder.sent_at(event) == datetime(2030, 6, 1, 10, 10, tzinfo=UTC)
    timed = an_event(reminder_data(late_seconds=600))
    assert reminder.sent_at(timed) == DUE - timedelta(hours=2)


@pytest.mark.parametrize(
    "data",
    [
        {},
        reminder_data(task=None),
        reminder_data(task={"title": "no id"}),
        reminder_data(task={"id": "not-a-uuid", "title": "t"}),
        reminder_data(due_at="2030-06-01T12:00:00"),  # naive: not an instant
        reminder_data(late_seconds=-1),
    ],
)
def test_data_that_is_not_a_reminder_is_a_poison_event(data: dict[str, Any]) -> None:
    with pytest.raises(PoisonEvent):
        Reminder.of(an_event(data))


def test_the_email_escapes_the_title_in_its_html_and_keeps_the_subject_to_one_short_line() -> None:
    reminder = Reminder.of(
        an_event(reminder_data(task={"id": str(uuid.uuid4()), "title": "<b>Tax</b> &\nfile"}))
    )
    email = reminder_email("ada@example.com", reminder, DUE - timedelta(hours=2))
    assert email.to == "ada@example.com"
    assert email.subject == "Reminder: <b>Tax</b> & file"
    assert "<strong>&lt;b&gt;Tax&lt;/b&gt; &amp;\nfile</strong>" in email.html
    assert "Due Sat 1 Jun 2030, 12:00 UTC (in 2 hours)" in email.html

    long = Reminder.of(an_event(reminder_data(task={"id": str(uuid.uuid4()), "title": "x" * 500})))
    subject = reminder_email("ada@example.com", long, DUE).subject
    assert len(subject) == 150 and subject.endswith("…")
