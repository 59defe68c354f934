"""Comments on tasks (issue 12): who may read, write, edit and delete them, in an inbox and in a project;
their events; bad bodies refused without a trace."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from taskapi import Api, Sql, assert_problem

from todo_backend import comments


async def project_with(alice: Api, **roles: str) -> tuple[str, dict[str, Api]]:
    response = await alice.post("/api/projects", json={"name": "Team"})
    assert response.status_code == 201, response.text
    project = response.json()["id"]
    users = {}
    for name, role in roles.items():
        users[name] = alice.as_user(f"{name}-{uuid.uuid4()}")
        added = await alice.post(
            f"/api/projects/{project}/members", json={"user_id": users[name].user_id, "role": role}
        )
        assert added.status_code == 201, added.text
    return project, users


async def comment(api: Api, task_id: str, body: str = "looks good") -> dict[str, Any]:
    response = await api.post(f"/api/tasks/{task_id}/comments", json={"body": body})
    assert response.status_code == 201, response.text
    return response.json()


async def test_the_owner_of_an_inbox_task_comments_on_it_and_nobody_else_sees_them(
    alice: Api, bob: Api
) -> None:
    task = await alice.create()
    first = await comment(alice, task["id"], "first")
    second = await comment(alice, task["id"], "  second, with its spaces  ")

    listed = await alice.list_all(f"/api/tasks/{task['id']}/comments", limit=1)

    assert listed == [first, second]
    assert second["body"] == "  second, with its spaces  " and second["author_id"] == alice.user_id
    url = f"/api/tasks/{task['id']}/comments"
    assert_problem(await bob.get(url), 404)
    assert_problem(await bob.post(url, json={"body": "hi"}), 404)
    assert_problem(await bob.patch(f"{url}/{first['id']}", json={"body": "x"}), 404)
    assert_problem(await bob.delete(f"{url}/{first['id']}"), 404)
    assert await alice.list_all(url) == [first, second]


async def test_in_a_project_editors_comment_viewers_read_authors_edit_admins_delete(alice: Api) -> None:
    project, users = await project_with(alice, ed="editor", vi="viewer", ad="admin", other="editor")
    task = (await users["ed"].post("/api/tasks", json={"title": "t", "project_id": project})).json()
    url = f"/api/tasks/{task['id']}/comments"

    mine = await comment(users["ed"], task["id"])
    assert (
        "editor role" in assert_problem(await users["vi"].post(url, json={"body": "me too"}), 403)["detail"]
    )
    assert [c["id"] for c in await users["vi"].list_all(url)] == [mine["id"]]
    assert_problem(await users["other"].patch(f"{url}/{mine['id']}", json={"body": "edited"}), 403)
    assert_problem(await users["other"].delete(f"{url}/{mine['id']}"), 403)

    edited = await users["ed"].patch(
        f"{url}/{mine['id']}", json={"body": "edited"}, headers={"If-Match": '"1"'}
    )
    assert edited.status_code == 200 and edited.json()["version"] == 2 and edited.headers["etag"] == '"2"'
    assert_problem(
        await users["ed"].patch(f"{url}/{mine['id']}", json={"body": "x"}, headers={"If-Match": '"1"'}), 412
    )

    assert (await users["ad"].delete(f"{url}/{mine['id']}")).status_code == 204
    assert await users["vi"].list_all(url) == []


async def test_a_comment_of_another_task_is_not_found_through_this_one(alice: Api) -> None:
    one, other = await alice.create(), await alice.create()
    remark = await comment(alice, one["id"])
    assert_problem(
        await alice.patch(f"/api/tasks/{other['id']}/comments/{remark['id']}", json={"body": "x"}), 404
    )
    assert_problem(await alice.delete(f"/api/tasks/{other['id']}/comments/{remark['id']}"), 404)


@pytest.mark.parametrize(
    "body", [{}, {"body": ""}, {"body": "   "}, {"body": "x" * 10_001}, {"body": 5}, {"body": "a\x00"}]
)
async def test_a_bad_comment_is_refused_and_leaves_nothing(
    alice: Api, sql: Sql, body: dict[str, Any]
) -> None:
    task = await alice.create()
    problem = assert_problem(await alice.post(f"/api/tasks/{task['id']}/comments", json=body), 422)
    assert problem["errors"][0]["field"] == "body"
    assert (
        await sql.pool.fetchval("SELECT count(*) FROM comment WHERE task_id = $1", uuid.UUID(task["id"])) == 0
    )


async def test_comment_events_follow_the_tasks_own_and_name_the_project_and_the_author(alice: Api) -> None:
    project, users = await project_with(alice, ed="editor")
    task = (await users["ed"].post("/api/tasks", json={"title": "t", "project_id": project})).json()
    remark = await comment(alice, task["id"], "please")
    await alice.delete(f"/api/tasks/{task['id']}/comments/{remark['id']}")

    history = await users["ed"].list_all(f"/api/tasks/{task['id']}/events")

    assert [(e["type"], e["userid"]) for e in history] == [
        ("dev.todo.task.created", users["ed"].user_id),
        ("dev.todo.comment.created", alice.user_id),
        ("dev.todo.comment.deleted", alice.user_id),
    ]
    assert all(e["projectid"] == project and e["partitionkey"] == task["id"] for e in history)
    assert history[1]["data"]["comment"] == remark


async def test_deleting_a_task_deletes_its_comments(alice: Api, sql: Sql) -> None:
    task = await alice.create()
    await comment(alice, task["id"])
    assert (await alice.delete(f"/api/tasks/{task['id']}")).status_code == 204
    assert (
        await sql.pool.fetchval("SELECT count(*) FROM comment WHERE task_id = $1", uuid.UUID(task["id"])) == 0
    )


async def test_a_comment_racing_its_tasks_delete_gets_in_first_never_a_5xx(
    alice: Api, sql: Sql, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = await alice.create()
    held, release = asyncio.Event(), asyncio.Event()
    real = comments.task_role

    async def role_then_hold(*args: Any) -> Any:
        role = await real(*args)
        held.set()
        await release.wait()  # the comment's transaction stays open here
        return role

    monkeypatch.setattr(comments, "task_role", role_then_hold)
    commenting = asyncio.create_task(alice.post(f"/api/tasks/{task['id']}/comments", json={"body": "racing"}))
    await held.wait()
    deleting = asyncio.create_task(alice.delete(f"/api/tasks/{task['id']}"))
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FROM task%'"
    )
    # Until the delete waits on the comment's lock (the database says so; no event can), or is done.
    while not deleting.done() and not await sql.pool.fetchval(waiting):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    release.set()

    commented, deleted = await commenting, await deleting
    assert commented.status_code == 201, commented.text
    assert deleted.status_code == 204, deleted.text
    assert (
        await sql.pool.fetchval("SELECT count(*) FROM comment WHERE task_id = $1", uuid.UUID(task["id"])) == 0
    )
