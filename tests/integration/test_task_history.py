"""get-task-history: a task's CloudEvents, oldest first, cursor-paginated, kept after the task is deleted."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from taskapi import Api, assert_problem

UTC_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
LIFECYCLE = [
    "dev.todo.task.created",
    "dev.todo.task.updated",
    "dev.todo.task.completed",
    "dev.todo.task.updated",
    "dev.todo.task.deleted",
]


async def a_lifecycle(api: Api) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Create, rename, complete, reopen and delete a task; the task JSON after each step."""
    task = await api.create(title="first")
    url = f"/api/tasks/{task['id']}"
    states = [task]
    states.append((await api.patch(url, json={"title": "second"})).json())
    states.append((await api.post(f"{url}/complete")).json())
    states.append((await api.patch(url, json={"completed": False})).json())
    assert (await api.delete(url)).status_code == 204
    return task, states


async def history(api: Api, task_id: str, **params: Any) -> list[dict[str, Any]]:
    return await api.list_all(f"/api/tasks/{task_id}/events", **params)


async def test_history_lists_the_tasks_cloudevents_oldest_first_even_after_delete(alice: Api) -> None:
    task, states = await a_lifecycle(alice)
    events = (await alice.get(f"/api/tasks/{task['id']}/events")).json()
    assert events["next_cursor"] is None
    assert [e["type"] for e in events["items"]] == LIFECYCLE
    assert [e["data"]["task"] for e in events["items"]] == [*states, states[-1]]
    assert [e["data"].get("changed") for e in events["items"]] == [
        None,
        ["title"],
        ["completed"],
        ["completed"],
        None,
    ]
    assert [e["source"] for e in events["items"]] == [
        "/functions/create-task",
        "/functions/update-task",
        "/functions/complete-task",
        "/functions/update-task",
        "/functions/delete-task",
    ]


async def test_each_history_item_is_a_cloudevent_with_our_extensions(alice: Api) -> None:
    task = await alice.create(title="shape")
    [event] = (await alice.get(f"/api/tasks/{task['id']}/events")).json()["items"]
    assert set(event) == {
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "partitionkey",
        "userid",
        "sequence",
        "traceparent",  # the request's span: it came without one, so a trace of its own
        "data",
    }
    assert event["specversion"] == "1.0"
    assert uuid.UUID(event["id"]).version == 4
    assert (event["subject"], event["partitionkey"], event["userid"]) == (
        task["id"],
        task["id"],
        alice.user_id,
    )
    assert event["datacontenttype"] == "application/json"
    assert UTC_Z.match(event["time"])
    assert event["data"] == {"task": task}


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_history_pages_concatenate_to_the_whole_history(alice: Api, limit: int) -> None:
    task, _ = await a_lifecycle(alice)
    whole = (await alice.get(f"/api/tasks/{task['id']}/events")).json()["items"]
    paged = await history(alice, task["id"], limit=limit)
    assert paged == whole
    assert len({e["id"] for e in paged}) == 5
    first = (await alice.get(f"/api/tasks/{task['id']}/events", params={"limit": limit})).json()
    assert len(first["items"]) == limit
    assert first["next_cursor"] is not None


async def test_events_of_other_tasks_never_appear_in_a_history(alice: Api) -> None:
    mine = await alice.create(title="mine")
    other = await alice.create(title="other")
    await alice.patch(f"/api/tasks/{other['id']}", json={"title": "other 2"})
    events = await history(alice, mine["id"])
    assert [e["subject"] for e in events] == [mine["id"]]


async def test_history_of_an_unknown_task_is_404(alice: Api) -> None:
    assert_problem(await alice.get(f"/api/tasks/{uuid.uuid4()}/events"), 404)


@pytest.mark.parametrize("limit", ["0", "201"])
async def test_history_limits_outside_1_to_200_are_422(alice: Api, limit: str) -> None:
    task = await alice.create()
    problem = assert_problem(await alice.get(f"/api/tasks/{task['id']}/events", params={"limit": limit}), 422)
    assert [e["field"] for e in problem["errors"]] == ["limit"]


async def test_a_history_cursor_of_another_task_does_not_leak_its_events(alice: Api) -> None:
    first, _ = await a_lifecycle(alice)
    second = await alice.create(title="second task")
    cursor = (await alice.get(f"/api/tasks/{first['id']}/events", params={"limit": 1})).json()["next_cursor"]
    response = await alice.get(f"/api/tasks/{second['id']}/events", params={"cursor": cursor})
    assert response.status_code in {200, 422}
    if response.status_code == 200:
        assert all(e["subject"] == second["id"] for e in response.json()["items"])
