"""Users see only their own tasks: another user's task is a 404 on every route, never a 403."""

from __future__ import annotations

from typing import Any

import pytest
from taskapi import Api, Sql, assert_problem

FOREIGN_ROUTES = [
    ("GET", "/api/tasks/{id}", None),
    ("PATCH", "/api/tasks/{id}", {"title": "bob was here"}),
    ("PUT", "/api/tasks/{id}", {"title": "bob was here"}),
    ("DELETE", "/api/tasks/{id}", None),
    ("POST", "/api/tasks/{id}/complete", None),
    ("GET", "/api/tasks/{id}/events", None),
]


@pytest.mark.parametrize(
    ("method", "url", "body"), FOREIGN_ROUTES, ids=["get", "patch", "put", "delete", "complete", "history"]
)
async def test_another_users_task_is_404_and_unchanged(
    alice: Api, bob: Api, sql: Sql, method: str, url: str, body: dict[str, Any] | None
) -> None:
    task = await alice.create(title="alice's", tags=["private"])
    before = await sql.task_row(task["id"]), await sql.counts(alice.user_id)
    response = await bob.request(method, url.format(id=task["id"]), json=body)
    problem = assert_problem(response, 404)
    assert "bob was here" not in response.text
    assert problem["title"] == "Not Found"
    assert (await sql.task_row(task["id"]), await sql.counts(alice.user_id)) == before
    assert await sql.counts(bob.user_id) == (0, 0)
    assert (await alice.get(f"/api/tasks/{task['id']}")).json() == task


async def test_another_users_task_is_404_even_when_its_version_is_matched(alice: Api, bob: Api) -> None:
    task = await alice.create()
    response = await bob.patch(f"/api/tasks/{task['id']}", json={"title": "x"}, headers={"If-Match": '"1"'})
    assert_problem(response, 404)


async def test_another_users_deleted_task_history_is_404(alice: Api, bob: Api) -> None:
    task = await alice.create()
    assert (await alice.delete(f"/api/tasks/{task['id']}")).status_code == 204
    assert_problem(await bob.get(f"/api/tasks/{task['id']}/events"), 404)


async def test_another_users_history_is_404_even_with_a_cursor(alice: Api, bob: Api) -> None:
    task = await alice.create()
    await alice.patch(f"/api/tasks/{task['id']}", json={"title": "second event"})
    first_page = (await alice.get(f"/api/tasks/{task['id']}/events", params={"limit": 1})).json()
    assert first_page["next_cursor"] is not None
    response = await bob.get(f"/api/tasks/{task['id']}/events", params={"cursor": first_page["next_cursor"]})
    assert_problem(response, 404)


async def test_a_list_shows_only_the_callers_tasks(alice: Api, bob: Api) -> None:
    alices = {(await alice.create(title=f"shared title {i}", tags=["common"]))["id"] for i in range(3)}
    bobs = {(await bob.create(title=f"shared title {i}", tags=["common"]))["id"] for i in range(2)}
    for params in [{}, {"tag": "common"}, {"q": "shared"}, {"status": "pending"}, {"sort": "title"}]:
        assert {t["id"] for t in await bob.list_all(**params)} == bobs
        assert {t["id"] for t in await alice.list_all(**params)} == alices


async def test_the_same_key_in_a_path_belongs_to_nobody_else(alice: Api, bob: Api) -> None:
    # A user who learns another's task id can neither read nor complete it through any route.
    task = await alice.create(title="secret")
    assert_problem(await bob.post(f"/api/tasks/{task['id']}/complete"), 404)
    assert (await alice.get(f"/api/tasks/{task['id']}")).json()["completed"] is False
