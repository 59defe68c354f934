"""What a reminder says: the event's data read as a typed message, the notification text and the email."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from todo_backend.errors import PoisonEvent
from todo_backend.events import ReminderDue, from_cloudevent, task_json
from todo_backend.locales import LANGUAGES, due_text, locale_tag, say
from todo_backend.models import Notification, Task
from todo_backend.notifications import reminder_email

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


def test_the_text_says_when_the_task_is_due_and_how_far_off_that_was_in_english_by_default() -> None:
    assert due_text(DUE, DUE - timedelta(minutes=30), "UTC", "en") == (
        "Due Sat, Jun 1, 2030, 12:00\u202fPM UTC (in 30 minutes)"
    )
    assert due_text(DUE, DUE - timedelta(days=1), "UTC", "en").endswith("(in 1 day)")
    now = due_text(DUE, DUE - timedelta(seconds=10), "UTC", "en")
    assert now == "Due now (Sat, Jun 1, 2030, 12:00\u202fPM UTC)"
    late = due_text(DUE, DUE + timedelta(hours=3), "UTC", "en")
    assert late == "Overdue: was due Sat, Jun 1, 2030, 12:00\u202fPM UTC (3 hours ago)"


def test_the_text_is_in_the_users_language_on_their_clock() -> None:
    assert due_text(DUE, DUE - timedelta(hours=2), "Europe/Berlin", "de") == (
        "Fällig Sa., 1. Juni 2030, 14:00 MESZ (in 2 Stunden)"
    )
    assert due_text(DUE, DUE + timedelta(minutes=5), "America/New_York", "de-CH").startswith(
        "Überfällig: war fällig Sa., 1. Juni 2030, 08:00"
    )
    assert due_text(DUE, DUE - timedelta(hours=2), "Europe/London", "en-GB") == (
        "Due Sat, 1 Jun 2030, 13:00 BST (in 2 hours)"
    )


@pytest.mark.parametrize(
    "phrase, values",
    [
        ("assigned", {"actor": "ada"}),
        ("added", {"actor": "ada", "role": "editor"}),
        ("due_now", {"when": "x"}),
    ],
)
def test_every_phrase_is_said_in_every_language(phrase: str, values: dict[str, str]) -> None:
    said = {language: say(phrase, language, **values) for language in LANGUAGES}
    assert len(set(said.values())) == len(LANGUAGES)  # each its own words
    assert all(value in text for text in said.values() for value in values.values())


@pytest.mark.parametrize(
    "tag, stored", [("de", "de"), ("de-AT", "de-AT"), ("en-gb", "en-GB"), (" en ", "en"), ("de-ch", "de-CH")]
)
def test_a_locale_of_a_supported_language_is_stored_as_cldr_spells_it(tag: str, stored: str) -> None:
    assert locale_tag(tag) == stored


@pytest.mark.parametrize(
    "tag",
    ["fr", "xx", "", "en_GB", "en-ZZ-x", "de--", "e", "12", "de@x/zh", "de.UTF-8", "de@<b>", "de-Latn-DE-1"],
)
def test_any_other_locale_is_refused_naming_the_supported_ones(tag: str) -> None:
    with pytest.raises(ValueError, match="supported: en, de"):
        locale_tag(tag)


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
    said = Notification(
        user_id="ada@example.com", event_id=uuid.uuid4(), title="<b>Tax</b> &\nfile", body="Due <soon>"
    )
    email = reminder_email("ada@example.com", said, "en")
    assert email.to == "ada@example.com"
    assert email.subject == "Reminder: <b>Tax</b> & file"
    assert "<strong>&lt;b&gt;Tax&lt;/b&gt; &amp;\nfile</strong>" in email.html
    assert "<p>Due &lt;soon&gt;</p>" in email.html
    assert reminder_email("ada@example.com", said, "de-AT").subject == "Erinnerung: <b>Tax</b> & file"

    long = Notification(user_id="a", event_id=uuid.uuid4(), title="x" * 500, body="b")
    subject = reminder_email("ada@example.com", long, "en").subject
    assert len(subject) == 150 and subject.endswith("…")
