"""Changing tasks: PATCH merges, PUT replaces, completion and reopening, reminders re-armed, ETags."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from taskapi import Api, Sql, assert_problem

UTC_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
DATETIME_FIELDS = ("completed_at", "due_date", "reminded_at", "occurrence_at", "created_at", "updated_at")


def url(task: dict[str, Any]) -> str:
    return f"/api/tasks/{task['id']}"


async def event_types(sql: Sql, task: dict[str, Any]) -> list[str]:
    return [row["type"] for row in await sql.events(task["id"])]


# --- create and get --------------------------------------------------------------------------------


async def test_create_returns_201_with_location_etag_and_the_full_task(alice: Api) -> None:
    response = await alice.post(
        "/api/tasks",
        json={
            "title": "  Plan trip  ",
            "description": "book trains",
            "due_date": "2030-07-01T10:00:00+02:00",
            "priority": "high",
            "tags": ["Travel", "travel", "Summer"],
            "remind_before_minutes": 60,
        },
    )
    assert response.status_code == 201
    task = response.json()
    assert response.headers["location"] == f"/api/tasks/{task['id']}"
    assert response.headers["etag"] == '"1"'
    assert response.headers["content-type"] == "application/json"
    assert uuid.UUID(task["id"])
    assert {k: task[k] for k in ("title", "description", "priority", "tags", "remind_before_minutes")} == {
        "title": "Plan trip",
        "description": "book trains",
        "priority": "high",
        "tags": ["travel", "summer"],
        "remind_before_minutes": 60,
    }
    assert task["due_date"] == "2030-07-01T08:00:00.000000Z"
    assert (task["completed"], task["completed_at"], task["reminded_at"], task["version"]) == (
        False,
        None,
        None,
        1,
    )
    assert (task["recurring_task_id"], task["occurrence_at"]) == (None, None)
    assert task["created_at"] == task["updated_at"]


async def test_get_returns_what_create_returned_with_its_etag(alice: Api) -> None:
    created = await alice.create(title="read me", due_date="2030-01-01T00:00:00-05:00", tags=["x"])
    response = await alice.get(url(created))
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json() == created


async def test_every_datetime_in_a_response_is_utc_with_z(alice: Api, sql: Sql) -> None:
    task = await alice.create(due_date="2031-03-04T05:06:07.891+05:30", completed=True)
    await sql.pool.execute("UPDATE task SET reminded_at = now() WHERE id = $1", uuid.UUID(task["id"]))
    fetched = (await alice.get(url(task))).json()
    assert fetched["due_date"] == "2031-03-03T23:36:07.891000Z"
    for field in DATETIME_FIELDS:
        if fetched[field] is not None:
            assert UTC_Z.match(fetched[field]), (field, fetched[field])
    assert fetched["reminded_at"] is not None and fetched["completed_at"] is not None
    listed = (await alice.get("/api/tasks")).json()["items"][0]
    history = (await alice.get(f"{url(task)}/events")).json()["items"][0]
    assert listed["due_date"] == history["data"]["task"]["due_date"] == "2031-03-03T23:36:07.891000Z"
    assert UTC_Z.match(history["time"])


async def test_creating_a_completed_task_stamps_its_completion(alice: Api) -> None:
    task = await alice.create(completed=True)
    assert task["completed"] is True
    assert task["completed_at"] == task["created_at"]


# --- PATCH merges, PUT replaces --------------------------------------------------------------------


async def test_patch_changes_only_the_fields_sent(alice: Api) -> None:
    task = await alice.create(
        title="old", description="keep me", priority="high", tags=["a"], due_date="2030-01-01T00:00:00Z"
    )
    response = await alice.patch(url(task), json={"title": "new", "tags": ["B"]})
    assert response.status_code == 200
    patched = response.json()
    assert response.headers["etag"] == '"2"'
    assert (patched["title"], patched["tags"], patched["version"]) == ("new", ["b"], 2)
    for field in ("description", "priority", "due_date", "completed", "created_at", "remind_before_minutes"):
        assert patched[field] == task[field], field
    assert patched["updated_at"] > task["updated_at"]
    assert (await alice.get(url(task))).json() == patched


async def test_patch_null_clears_the_due_date_and_the_reminder_lead_time(alice: Api) -> None:
    task = await alice.create(due_date="2030-01-01T00:00:00Z", remind_before_minutes=30)
    patched = (await alice.patch(url(task), json={"due_date": None, "remind_before_minutes": None})).json()
    assert (patched["due_date"], patched["remind_before_minutes"]) == (None, None)


async def test_put_replaces_every_editable_field_resetting_the_omitted_ones(alice: Api) -> None:
    task = await alice.create(
        title="old",
        description="gone after put",
        priority="high",
        tags=["a", "b"],
        due_date="2030-01-01T00:00:00Z",
        remind_before_minutes=15,
    )
    response = await alice.put(url(task), json={"title": "replaced"})
    assert response.status_code == 200
    replaced = response.json()
    assert response.headers["etag"] == '"2"'
    assert {k: replaced[k] for k in ("title", "description", "priority", "tags", "due_date")} == {
        "title": "replaced",
        "description": "",
        "priority": "medium",
        "tags": [],
        "due_date": None,
    }
    assert replaced["remind_before_minutes"] is None
    assert (replaced["id"], replaced["created_at"], replaced["version"]) == (
        task["id"],
        task["created_at"],
        2,
    )


async def test_an_update_event_lists_exactly_the_fields_that_changed(alice: Api, sql: Sql) -> None:
    task = await alice.create(title="same", description="old", priority="low")
    await alice.patch(url(task), json={"title": "same", "description": "new", "priority": "high"})
    events = await sql.events(task["id"])
    assert [e["type"] for e in events] == ["dev.todo.task.created", "dev.todo.task.updated"]
    assert sorted(events[1]["data"]["changed"]) == ["description", "priority"]


async def test_a_put_event_lists_the_fields_the_replace_reset(alice: Api, sql: Sql) -> None:
    task = await alice.create(title="t", tags=["x"], priority="high")
    await alice.put(url(task), json={"title": "t", "priority": "high"})
    events = await sql.events(task["id"])
    assert events[-1]["data"]["changed"] == ["tags"]
    assert events[-1]["data"]["task"]["tags"] == []


async def test_a_change_that_changes_nothing_keeps_the_version_and_emits_nothing(
    alice: Api, sql: Sql
) -> None:
    task = await alice.create(title="still", tags=["t"])
    for response in [
        await alice.patch(url(task), json={"title": "  still ", "tags": ["T"]}),
        await alice.patch(url(task), json={}),
        await alice.put(url(task), json={"title": "still", "tags": ["t"]}),
    ]:
        assert response.status_code == 200
        assert response.json() == task
        assert response.headers["etag"] == '"1"'
    assert await event_types(sql, task) == ["dev.todo.task.created"]


# --- completion and reopening ----------------------------------------------------------------------


async def test_complete_returns_the_completed_task_and_emits_task_completed(alice: Api, sql: Sql) -> None:
    task = await alice.create()
    response = await alice.post(f"{url(task)}/complete")
    assert response.status_code == 200
    done = response.json()
    assert response.headers["etag"] == '"2"'
    assert (done["completed"], done["version"]) == (True, 2)
    assert UTC_Z.match(done["completed_at"])
    events = await sql.events(task["id"])
    assert [e["type"] for e in events] == ["dev.todo.task.created", "dev.todo.task.completed"]
    assert events[1]["data"]["task"] == done
    assert events[1]["source"] == "/functions/complete-task"


async def test_completing_twice_changes_nothing_the_second_time(alice: Api, sql: Sql) -> None:
    task = await alice.create()
    first = await alice.post(f"{url(task)}/complete")
    second = await alice.post(f"{url(task)}/complete")
    assert second.status_code == 200
    assert second.json() == first.json()
    assert second.headers["etag"] == first.headers["etag"] == '"2"'
    assert await event_types(sql, task) == ["dev.todo.task.created", "dev.todo.task.completed"]


async def test_completing_via_patch_emits_task_completed(alice: Api, sql: Sql) -> None:
    task = await alice.create()
    done = (await alice.patch(url(task), json={"completed": True})).json()
    assert done["completed"] is True and done["completed_at"] is not None
    events = await sql.events(task["id"])
    assert [e["type"] for e in events] == ["dev.todo.task.created", "dev.todo.task.completed"]
    assert events[1]["source"] == "/functions/update-task"


async def test_completing_via_put_emits_task_completed(alice: Api, sql: Sql) -> None:
    task = await alice.create(title="p")
    assert (await alice.put(url(task), json={"title": "p", "completed": True})).json()["completed"] is True
    assert await event_types(sql, task) == ["dev.todo.task.created", "dev.todo.task.completed"]


async def test_reopening_via_patch_clears_the_completion_and_emits_task_updated(alice: Api, sql: Sql) -> None:
    task = await alice.create()
    await alice.post(f"{url(task)}/complete")
    response = await alice.patch(url(task), json={"completed": False})
    reopened = response.json()
    assert (reopened["completed"], reopened["completed_at"], reopened["version"]) == (False, None, 3)
    events = await sql.events(task["id"])
    assert [e["type"] for e in events][-1] == "dev.todo.task.updated"
    assert events[-1]["data"]["changed"] == ["completed"]
    again = (await alice.post(f"{url(task)}/complete")).json()
    assert again["completed"] is True and again["version"] == 4
    assert await event_types(sql, task) == [
        "dev.todo.task.created",
        "dev.todo.task.completed",
        "dev.todo.task.updated",
        "dev.todo.task.completed",
    ]


async def test_put_without_completed_reopens_a_completed_task(alice: Api) -> None:
    task = await alice.create(title="r", completed=True)
    replaced = (await alice.put(url(task), json={"title": "r"})).json()
    assert (replaced["completed"], replaced["completed_at"]) == (False, None)


# --- reminders -------------------------------------------------------------------------------------


async def reminded(sql: Sql, task: dict[str, Any]) -> None:
    """Mark the task reminded, as the reminder checker would."""
    done = await sql.pool.execute("UPDATE task SET reminded_at = now() WHERE id = $1", uuid.UUID(task["id"]))
    assert done == "UPDATE 1"


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("PATCH", {"due_date": "2030-06-02T09:00:00Z"}),
        ("PATCH", {"due_date": None}),
        ("PATCH", {"remind_before_minutes": 5}),
        ("PUT", {"title": "t", "due_date": "2030-06-02T09:00:00Z", "remind_before_minutes": 60}),
    ],
    ids=["new-due-date", "due-date-cleared", "new-lead-time", "put-with-new-due-date"],
)
async def test_changing_the_due_date_or_lead_time_clears_reminded_at(
    alice: Api, sql: Sql, method: str, body: dict[str, Any]
) -> None:
    task = await alice.create(title="t", due_date="2030-06-01T09:00:00Z", remind_before_minutes=60)
    await reminded(sql, task)
    assert (await alice.get(url(task))).json()["reminded_at"] is not None
    response = await alice.request(method, url(task), json=body)
    assert response.status_code == 200
    assert response.json()["reminded_at"] is None
    row = await sql.task_row(task["id"])
    assert row is not None and row["reminded_at"] is None


async def test_the_reminder_instant_follows_the_due_date_and_lead_time(alice: Api, sql: Sql) -> None:
    task = await alice.create(due_date="2030-06-01T09:00:00Z", remind_before_minutes=90)
    row = await sql.task_row(task["id"])
    assert row is not None and row["remind_at"] == datetime(2030, 6, 1, 7, 30, tzinfo=UTC)
    await alice.patch(url(task), json={"remind_before_minutes": 30})
    row = await sql.task_row(task["id"])
    assert row is not None and row["remind_at"] == datetime(2030, 6, 1, 8, 30, tzinfo=UTC)


async def test_other_changes_keep_reminded_at(alice: Api, sql: Sql) -> None:
    task = await alice.create(due_date="2030-06-01T09:00:00Z")
    await reminded(sql, task)
    patched = (await alice.patch(url(task), json={"title": "renamed", "due_date": task["due_date"]})).json()
    assert patched["title"] == "renamed"
    assert patched["reminded_at"] is not None


# --- ETag and If-Match -----------------------------------------------------------------------------

CONDITIONAL = [
    ("PATCH", "", {"title": "conditional"}),
    ("PUT", "", {"title": "conditional"}),
    ("DELETE", "", None),
    ("POST", "/complete", None),
]
CONDITIONAL_IDS = ["patch", "put", "delete", "complete"]


@pytest.mark.parametrize(("method", "suffix", "body"), CONDITIONAL, ids=CONDITIONAL_IDS)
@pytest.mark.parametrize("if_match", ['"1"', 'W/"2"', '"1", "3"', '"abc"'])
async def test_a_stale_if_match_is_412_and_changes_nothing(
    alice: Api, sql: Sql, method: str, suffix: str, body: dict[str, Any] | None, if_match: str
) -> None:
    task = await alice.create(title="versioned")
    current = (await alice.patch(url(task), json={"description": "v2"})).json()
    before = await sql.task_row(task["id"]), await sql.counts(alice.user_id)
    response = await alice.request(method, url(task) + suffix, json=body, headers={"If-Match": if_match})
    assert assert_problem(response, 412)["title"] == "Precondition Failed"
    assert (await sql.task_row(task["id"]), await sql.counts(alice.user_id)) == before
    assert (await alice.get(url(task))).json() == current


@pytest.mark.parametrize(("method", "suffix", "body"), CONDITIONAL, ids=CONDITIONAL_IDS)
@pytest.mark.parametrize("if_match", ['"2"', '"1", "2"', "*"])
async def test_a_current_if_match_lets_the_change_through(
    alice: Api, sql: Sql, method: str, suffix: str, body: dict[str, Any] | None, if_match: str
) -> None:
    task = await alice.create(title="versioned")
    await alice.patch(url(task), json={"description": "v2"})
    response = await alice.request(method, url(task) + suffix, json=body, headers={"If-Match": if_match})
    assert response.status_code == (204 if method == "DELETE" else 200), response.text
    assert len(await sql.events(task["id"])) == 3
    if method != "DELETE":
        assert response.headers["etag"] == '"3"'
        assert response.json()["version"] == 3


async def test_the_etag_from_one_response_is_the_precondition_for_the_next(alice: Api) -> None:
    task = await alice.create()
    etag = (await alice.get(url(task))).headers["etag"]
    first = await alice.patch(url(task), json={"title": "one"}, headers={"If-Match": etag})
    assert first.status_code == 200
    lost_update = await alice.patch(url(task), json={"title": "two"}, headers={"If-Match": etag})
    assert_problem(lost_update, 412)
    second = await alice.patch(url(task), json={"title": "two"}, headers={"If-Match": first.headers["etag"]})
    assert second.json()["title"] == "two"


# --- delete ----------------------------------------------------------------------------------------


async def test_delete_is_204_then_the_task_is_gone_and_a_second_delete_is_404(alice: Api, sql: Sql) -> None:
    task = await alice.create(title="doomed")
    response = await alice.delete(url(task))
    assert (response.status_code, response.content) == (204, b"")
    assert_problem(await alice.get(url(task)), 404)
    assert_problem(await alice.delete(url(task)), 404)
    assert await sql.task_row(task["id"]) is None
    events = await sql.events(task["id"])
    assert [e["type"] for e in events] == ["dev.todo.task.created", "dev.todo.task.deleted"]
    assert events[1]["data"]["task"] == task


# --- concurrent changes ----------------------------------------------------------------------------


async def test_concurrent_patches_get_consecutive_versions_in_event_order(alice: Api, sql: Sql) -> None:
    task = await alice.create(title="t0")
    responses = await asyncio.gather(*(alice.patch(url(task), json={"title": f"t{i}"}) for i in range(1, 6)))
    assert sorted(r.json()["version"] for r in responses) == [2, 3, 4, 5, 6]
    events = await sql.events(task["id"])
    assert [e["data"]["task"]["version"] for e in events] == [1, 2, 3, 4, 5, 6]
    final = (await alice.get(url(task))).json()
    assert final == events[-1]["data"]["task"]


async def test_concurrent_changes_with_the_same_if_match_let_exactly_one_through(
    alice: Api, sql: Sql
) -> None:
    task = await alice.create(title="contended")
    responses = await asyncio.gather(
        *(
            alice.patch(url(task), json={"title": f"writer {i}"}, headers={"If-Match": '"1"'})
            for i in range(5)
        )
    )
    assert sorted(r.status_code for r in responses) == [200, 412, 412, 412, 412]
    [winner] = [r.json() for r in responses if r.status_code == 200]
    assert (await alice.get(url(task))).json() == winner
    assert len(await sql.events(task["id"])) == 2


async def test_concurrent_completions_complete_once(alice: Api, sql: Sql) -> None:
    task = await alice.create()
    responses = await asyncio.gather(*(alice.post(f"{url(task)}/complete") for _ in range(5)))
    assert [r.status_code for r in responses] == [200] * 5
    assert {r.json()["version"] for r in responses} == {2}
    assert await event_types(sql, task) == ["dev.todo.task.created", "dev.todo.task.completed"]
