"""Task input validation and output shape: what the API accepts, normalizes and refuses."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import SQLModel

from todo_backend.events import task_json
from todo_backend.fields import Priority
from todo_backend.http import Problem, parse
from todo_backend.models import (
    RecurringTaskCreate,
    RecurringTaskUpdate,
    Task,
    TaskCreate,
    TaskUpdate,
    WebhookCreate,
)


def refused_fields(model: type[SQLModel], data: dict[str, Any]) -> set[str]:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(data)
    return {".".join(str(p) for p in err["loc"]) for err in raised.value.errors()}


# --- title -----------------------------------------------------------------------------------------


def test_the_title_is_trimmed() -> None:
    assert TaskCreate.model_validate({"title": "  Buy milk \n"}).title == "Buy milk"


@pytest.mark.parametrize("title", ["", "   ", "\t\n"])
def test_a_blank_title_is_refused(title: str) -> None:
    assert refused_fields(TaskCreate, {"title": title}) == {"title"}


def test_a_title_of_500_characters_is_accepted() -> None:
    assert TaskCreate.model_validate({"title": "t" * 500}).title == "t" * 500


def test_a_title_of_501_characters_is_refused() -> None:
    assert refused_fields(TaskCreate, {"title": "t" * 501}) == {"title"}


def test_the_500_character_title_limit_applies_after_trimming() -> None:
    # Spec: "title 1-500 chars after trimming"; the whitespace a client left around it does not count.
    assert TaskCreate.model_validate({"title": "  " + "t" * 500 + "  "}).title == "t" * 500


def test_a_put_body_without_a_title_is_refused() -> None:
    assert refused_fields(TaskCreate, {"description": "no title"}) == {"title"}


# --- description -----------------------------------------------------------------------------------


def test_a_description_of_10000_characters_is_accepted() -> None:
    assert len(TaskCreate.model_validate({"title": "t", "description": "d" * 10_000}).description) == 10_000


def test_a_description_of_10001_characters_is_refused() -> None:
    assert refused_fields(TaskCreate, {"title": "t", "description": "d" * 10_001}) == {"description"}


# --- tags ------------------------------------------------------------------------------------------


def test_tags_are_lower_cased_trimmed_and_deduplicated_keeping_first_order() -> None:
    tags = TaskCreate.model_validate(
        {"title": "t", "tags": [" Home ", "WORK", "home", "Work", "errands"]}
    ).tags
    assert tags == ["home", "work", "errands"]


def test_twenty_distinct_tags_are_accepted() -> None:
    tags = [f"tag{i}" for i in range(20)]
    assert TaskCreate.model_validate({"title": "t", "tags": tags}).tags == tags


def test_twenty_one_distinct_tags_are_refused() -> None:
    assert refused_fields(TaskCreate, {"title": "t", "tags": [f"tag{i}" for i in range(21)]}) == {"tags"}


def test_duplicates_do_not_count_towards_the_tag_limit() -> None:
    tags = [f"tag{i}" for i in range(20)] + ["TAG0", "Tag1"]
    assert len(TaskCreate.model_validate({"title": "t", "tags": tags}).tags) == 20


def test_a_tag_of_50_characters_is_accepted() -> None:
    assert TaskCreate.model_validate({"title": "t", "tags": ["x" * 50]}).tags == ["x" * 50]


@pytest.mark.parametrize("tag", ["x" * 51, "", "   "], ids=["51-chars", "empty", "blank"])
def test_a_tag_outside_1_to_50_characters_is_refused(tag: str) -> None:
    assert refused_fields(TaskCreate, {"title": "t", "tags": ["ok", tag]}) == {"tags"}


def test_tags_are_normalized_in_a_patch_too() -> None:
    assert TaskUpdate.model_validate({"tags": ["A", "a", "B"]}).tags == ["a", "b"]


# --- datetimes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [TaskCreate, TaskUpdate])
def test_a_naive_due_date_is_refused(model: type[TaskCreate] | type[TaskUpdate]) -> None:
    assert refused_fields(model, {"title": "t", "due_date": "2030-01-01T09:00:00"}) == {"due_date"}


def test_a_due_date_with_an_offset_keeps_its_instant() -> None:
    due = TaskCreate.model_validate({"title": "t", "due_date": "2030-01-01T09:00:00+02:00"}).due_date
    assert due == datetime(2030, 1, 1, 7, 0, tzinfo=UTC)


def test_task_json_renders_every_datetime_in_utc_with_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    task = Task(
        user_id="u",
        title="t",
        due_date=datetime(2030, 1, 1, 9, 30, tzinfo=plus_two),
        completed=True,
        completed_at=datetime(2030, 1, 1, 1, 0, 0, 5, tzinfo=plus_two),
        created_at=datetime(2029, 12, 31, 23, 0, tzinfo=plus_two),
        updated_at=datetime(2029, 12, 31, 23, 0, tzinfo=plus_two),
    )
    body = task_json(task)
    assert body["due_date"] == "2030-01-01T07:30:00.000000Z"
    assert body["completed_at"] == "2029-12-31T23:00:00.000005Z"
    assert body["created_at"] == "2029-12-31T21:00:00.000000Z"
    assert body["reminded_at"] is None


def test_task_json_has_exactly_the_documented_fields() -> None:
    task = Task(user_id="u", title="t", created_at=datetime.now(UTC), updated_at=datetime.now(UTC))
    assert set(task_json(task)) == {
        "id",
        "title",
        "description",
        "completed",
        "completed_at",
        "due_date",
        "priority",
        "tags",
        "remind_before_minutes",
        "reminded_at",
        "recurring_task_id",
        "occurrence_at",
        "project_id",
        "assignee_id",
        "parent_id",
        "created_at",
        "updated_at",
        "version",
    }
    assert "user_id" not in task_json(task)


# --- unknown fields, defaults, enums and bounds -----------------------------------------------------


@pytest.mark.parametrize("model", [TaskCreate, TaskUpdate])
@pytest.mark.parametrize("field", ["user_id", "id", "version", "reminded_at", "colour"])
def test_unknown_and_read_only_fields_are_refused(
    model: type[TaskCreate] | type[TaskUpdate], field: str
) -> None:
    assert field in refused_fields(model, {"title": "t", field: "x"})


def test_a_create_body_gets_the_documented_defaults() -> None:
    fields = TaskCreate.model_validate({"title": "t"})
    assert (fields.description, fields.priority, fields.tags, fields.completed) == (
        "",
        Priority.medium,
        [],
        False,
    )
    assert (fields.due_date, fields.remind_before_minutes) == (None, None)


def test_an_unknown_priority_is_refused() -> None:
    assert refused_fields(TaskCreate, {"title": "t", "priority": "urgent"}) == {"priority"}


@pytest.mark.parametrize("minutes", [-1, 525_601])
def test_a_reminder_lead_time_outside_0_to_a_year_is_refused(minutes: int) -> None:
    assert refused_fields(TaskCreate, {"title": "t", "remind_before_minutes": minutes}) == {
        "remind_before_minutes"
    }


# --- PATCH semantics -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["title", "description", "priority", "tags", "completed"])
def test_patch_null_is_refused_for_a_non_nullable_field(field: str) -> None:
    assert refused_fields(TaskUpdate, {field: None}) == {field}


@pytest.mark.parametrize("field", ["due_date", "remind_before_minutes"])
def test_patch_null_clears_a_nullable_field(field: str) -> None:
    assert TaskUpdate.model_validate({field: None}).model_dump(exclude_unset=True) == {field: None}


def test_a_patch_carries_only_the_fields_sent() -> None:
    sent = TaskUpdate.model_validate({"priority": "high", "completed": True}).model_dump(exclude_unset=True)
    assert sent == {"priority": Priority.high, "completed": True}


def test_validation_problems_name_each_invalid_field() -> None:
    with pytest.raises(Problem) as raised:
        parse(TaskCreate, {"title": " ", "tags": ["x" * 51], "colour": "red", "id": str(uuid.uuid4())})
    assert raised.value.status == 422
    assert {e["field"] for e in raised.value.errors or []} == {"title", "tags", "colour", "id"}
    assert all(e["message"] for e in raised.value.errors or [])


# --- hostile input: what PostgreSQL or UTF-8 cannot hold, and JSON types the API does not coerce ---------

INPUTS: list[type[SQLModel]] = [
    TaskCreate,
    TaskUpdate,
    RecurringTaskCreate,
    RecurringTaskUpdate,
    WebhookCreate,
]
# The fields a body needs besides the one under test.
REQUIRED: dict[type[SQLModel], dict[str, Any]] = {
    TaskCreate: {"title": "t"},
    TaskUpdate: {},
    RecurringTaskCreate: {"title": "t", "schedule": "0 9 * * *"},
    RecurringTaskUpdate: {},
    WebhookCreate: {"url": "http://127.0.0.1:9/hook", "event_types": ["dev.todo.task.created"]},
}
LONE_SURROGATE = json.loads('"\\ud800"')  # what a JSON "\ud800" escape decodes to: no UTF-8 form


# A value each field would accept but for the character put at {}: only that character is at fault.
VALID_AROUND = {
    "schedule": "0 9 * * *{}",
    "timezone": "UTC{}",
    "url": "http://127.0.0.1:9/{}",
    "secret": "sixteen-character{}-secret",
}


def text_cases() -> list[tuple[type[SQLModel], str, Any]]:
    """Every text field of every input model, with the value shape it takes (a string or a list)."""
    cases = []
    for model in INPUTS:
        for name, info in model.model_fields.items():
            shape = str(info.annotation)
            template = VALID_AROUND.get(name, "x{}")
            if "list[str]" in shape:
                cases.append((model, name, ["ok", template]))
            elif "str" in shape:
                cases.append((model, name, template))
    return cases


TEXT_CASES = text_cases()


def test_the_hostile_text_cases_cover_the_fields_users_send() -> None:
    named = {(m.__name__, f) for m, f, _ in TEXT_CASES}
    assert {("TaskCreate", "title"), ("TaskCreate", "tags"), ("RecurringTaskCreate", "title")} <= named
    assert {("RecurringTaskUpdate", "timezone"), ("WebhookCreate", "secret")} <= named


def _with(template: Any, bad: str) -> Any:
    return [item.format(bad) for item in template] if isinstance(template, list) else template.format(bad)


@pytest.mark.parametrize("bad", [LONE_SURROGATE, "\udfff", "\x00"], ids=["high-surrogate", "low", "nul"])
@pytest.mark.parametrize(("model", "field", "template"), TEXT_CASES, ids=lambda v: getattr(v, "__name__", v))
def test_a_lone_surrogate_or_nul_in_any_text_field_is_refused_naming_the_field(
    model: type[SQLModel], field: str, template: Any, bad: str
) -> None:
    data = {**REQUIRED[model], field: _with(template, bad)}
    assert refused_fields(model, data) == {field}


def test_a_surrogate_pair_is_refused_but_the_character_it_spells_is_accepted() -> None:
    # json.loads joins an escaped pair into one character; only unpaired halves are unstorable.
    assert TaskCreate.model_validate(json.loads('{"title": "\\ud83d\\ude00"}')).title == "\U0001f600"


DATETIMES = [
    (TaskCreate, "due_date"),
    (TaskUpdate, "due_date"),
    (RecurringTaskCreate, "starts_at"),
    (RecurringTaskCreate, "until"),
    (RecurringTaskUpdate, "starts_at"),
    (RecurringTaskUpdate, "until"),
]


@pytest.mark.parametrize(
    "value",
    [
        1_900_000_000,
        1_900_000_000.5,
        "1900000000",
        True,
        "2030-01-01T09:00Z",
        "2030-01-01 09:00:00Z",
        "2030-01-01T09:00:00+0100",
        "2030-01-01",
        "\u0662\u0660\u0663\u0660-01-01T09:00:00Z",
    ],
    ids=[
        "unix-int",
        "unix-float",
        "unix-string",
        "bool",
        "no-seconds",
        "space",
        "offset-without-colon",
        "date-only",
        "arabic-digits",
    ],
)
@pytest.mark.parametrize(("model", "field"), DATETIMES, ids=lambda v: getattr(v, "__name__", v))
def test_a_datetime_field_takes_only_an_rfc_3339_string_with_an_offset(
    model: type[SQLModel], field: str, value: Any
) -> None:
    assert refused_fields(model, {**REQUIRED[model], field: value}) == {field}


@pytest.mark.parametrize(
    "value", ["2030-01-01T09:00:00Z", "2030-01-01t09:00:00.5z", "2030-01-01T09:00:00.123456-05:30"]
)
def test_rfc_3339_datetimes_in_any_case_with_fractions_are_accepted(value: str) -> None:
    assert TaskCreate.model_validate({"title": "t", "due_date": value}).due_date is not None


INTEGERS = [
    (TaskCreate, "remind_before_minutes"),
    (TaskUpdate, "remind_before_minutes"),
    (RecurringTaskCreate, "remind_before_minutes"),
    (RecurringTaskUpdate, "remind_before_minutes"),
    (RecurringTaskCreate, "max_occurrences"),
    (RecurringTaskUpdate, "max_occurrences"),
]
BOOLEANS = [(TaskCreate, "completed"), (TaskUpdate, "completed")]
BOOLEANS += [(RecurringTaskCreate, "paused"), (RecurringTaskUpdate, "paused")]


@pytest.mark.parametrize("value", [True, False, 5.0, "5"], ids=["true", "false", "float", "string"])
@pytest.mark.parametrize(("model", "field"), INTEGERS, ids=lambda v: getattr(v, "__name__", v))
def test_an_integer_field_takes_only_a_json_integer(model: type[SQLModel], field: str, value: Any) -> None:
    assert refused_fields(model, {**REQUIRED[model], field: value}) == {field}


@pytest.mark.parametrize("value", [1, 0, "true", "yes"], ids=["one", "zero", "string-true", "yes"])
@pytest.mark.parametrize(("model", "field"), BOOLEANS, ids=lambda v: getattr(v, "__name__", v))
def test_a_boolean_field_takes_only_a_json_boolean(model: type[SQLModel], field: str, value: Any) -> None:
    assert refused_fields(model, {**REQUIRED[model], field: value}) == {field}
