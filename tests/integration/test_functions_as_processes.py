"""Each task function served by functions-framework as its own process, as Knative runs it, over real HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from taskapi import TASK_FUNCTIONS, Api, assert_problem

from todo_backend.catalog import Function, by_name
from todo_backend.devstack.runner import free_port, function_env, spawn_function


@pytest.fixture(scope="session")
async def processes(function_process: Callable[[str], str]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """A client per task function process; the processes start concurrently (each takes about a second)."""
    names = [fn.name for fn in TASK_FUNCTIONS]
    urls = await asyncio.gather(*(asyncio.to_thread(function_process, name) for name in names))
    # No keep-alive: the server may close an idle connection just as the client reuses it, which would
    # fail a test for a reason that has nothing to do with the function.
    limits = httpx.Limits(max_keepalive_connections=0)
    clients = {
        name: httpx.AsyncClient(base_url=url, timeout=10, limits=limits)
        for name, url in zip(names, urls, strict=True)
    }
    yield clients
    for client in clients.values():
        await client.aclose()


@pytest.fixture
def remote(processes: dict[str, httpx.AsyncClient], jwt_secret: str) -> Api:
    """A new user talking to the function processes, each request routed by the catalog like the gateway."""
    return Api(processes, jwt_secret, f"user-{uuid.uuid4()}")


async def creates_a_task(api: Api) -> None:
    response = await api.post("/api/tasks", json={"title": " over the wire ", "tags": ["Net"]})
    assert response.status_code == 201, response.text
    task = response.json()
    assert (task["title"], task["tags"], task["version"]) == ("over the wire", ["net"], 1)
    assert response.headers["location"] == f"/api/tasks/{task['id']}"
    assert (await api.get(response.headers["location"])).json() == task


async def lists_tasks(api: Api) -> None:
    ids = [(await api.create(title=f"listed {i}"))["id"] for i in range(3)]
    page = (await api.get("/api/tasks", params={"limit": 2, "sort": "title"})).json()
    rest = (
        await api.get("/api/tasks", params={"limit": 2, "sort": "title", "cursor": page["next_cursor"]})
    ).json()
    assert [t["id"] for t in page["items"] + rest["items"]] == ids
    assert rest["next_cursor"] is None


async def gets_a_task(api: Api) -> None:
    task = await api.create(title="fetch me", due_date="2030-01-01T12:00:00+01:00")
    response = await api.get(f"/api/tasks/{task['id']}")
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json()["due_date"] == "2030-01-01T11:00:00.000000Z"
    assert_problem(await api.get(f"/api/tasks/{uuid.uuid4()}"), 404)


async def updates_a_task(api: Api) -> None:
    task = await api.create(title="v1", priority="low")
    url = f"/api/tasks/{task['id']}"
    patched = await api.patch(url, json={"priority": "high"}, headers={"If-Match": '"1"'})
    assert (patched.status_code, patched.json()["priority"], patched.headers["etag"]) == (200, "high", '"2"')
    replaced = await api.put(url, json={"title": "v3"})
    assert (replaced.json()["title"], replaced.json()["priority"], replaced.json()["version"]) == (
        "v3",
        "medium",
        3,
    )
    assert_problem(await api.patch(url, json={"title": "stale"}, headers={"If-Match": '"1"'}), 412)


async def deletes_a_task(api: Api) -> None:
    task = await api.create(title="delete me")
    response = await api.delete(f"/api/tasks/{task['id']}")
    assert response.status_code == 204
    assert_problem(await api.get(f"/api/tasks/{task['id']}"), 404)


async def completes_a_task(api: Api) -> None:
    task = await api.create(title="finish me")
    first = await api.post(f"/api/tasks/{task['id']}/complete")
    second = await api.post(f"/api/tasks/{task['id']}/complete")
    assert first.status_code == second.status_code == 200
    assert first.json()["completed"] is True
    assert second.json() == first.json()


async def reads_a_tasks_history(api: Api) -> None:
    task = await api.create(title="with a past")
    await api.post(f"/api/tasks/{task['id']}/complete")
    events = (await api.get(f"/api/tasks/{task['id']}/events")).json()
    assert [e["type"] for e in events["items"]] == ["dev.todo.task.created", "dev.todo.task.completed"]
    assert events["items"][1]["source"] == "/functions/complete-task"


async def comments_on_a_task(api: Api) -> None:
    task = await api.create(title="discuss me")
    response = await api.post(f"/api/tasks/{task['id']}/comments", json={"body": "over the wire"})
    assert response.status_code == 201, response.text
    assert (await api.get(response.headers["location"].rsplit("/", 1)[0])).json()["items"] == [
        response.json()
    ]


async def lists_comments(api: Api) -> None:
    task = await api.create(title="discussed")
    bodies = [f"remark {n}" for n in range(3)]
    for body in bodies:
        await api.post(f"/api/tasks/{task['id']}/comments", json={"body": body})
    listed = await api.list_all(f"/api/tasks/{task['id']}/comments", limit=2)
    assert [c["body"] for c in listed] == bodies


async def edits_a_comment(api: Api) -> None:
    task = await api.create(title="reworded")
    url = f"/api/tasks/{task['id']}/comments"
    remark = (await api.post(url, json={"body": "teh"})).json()
    edited = await api.patch(f"{url}/{remark['id']}", json={"body": "the"}, headers={"If-Match": '"1"'})
    assert (edited.status_code, edited.json()["body"], edited.headers["etag"]) == (200, "the", '"2"')


async def deletes_a_comment(api: Api) -> None:
    task = await api.create(title="retracted")
    url = f"/api/tasks/{task['id']}/comments"
    remark = (await api.post(url, json={"body": "oops"})).json()
    assert (await api.delete(f"{url}/{remark['id']}")).status_code == 204
    assert (await api.get(url)).json()["items"] == []


CASES: dict[str, Callable[[Api], Awaitable[None]]] = {
    "create-task": creates_a_task,
    "list-tasks": lists_tasks,
    "get-task": gets_a_task,
    "update-task": updates_a_task,
    "delete-task": deletes_a_task,
    "complete-task": completes_a_task,
    "get-task-history": reads_a_tasks_history,
    "create-comment": comments_on_a_task,
    "list-comments": lists_comments,
    "update-comment": edits_a_comment,
    "delete-comment": deletes_a_comment,
}


def test_every_task_function_has_a_process_test() -> None:
    assert set(CASES) == {fn.name for fn in TASK_FUNCTIONS}


@pytest.mark.parametrize("name", list(CASES))
async def test_the_function_works_as_its_own_process(remote: Api, name: str) -> None:
    await CASES[name](remote)


@pytest.mark.parametrize("fn", TASK_FUNCTIONS, ids=lambda fn: fn.name)
async def test_the_function_process_refuses_a_request_without_a_token(
    processes: dict[str, httpx.AsyncClient], fn: Function
) -> None:
    route = fn.routes[0]
    response = await processes[fn.name].request(
        route.method, route.path.format(id=uuid.uuid4(), comment_id=uuid.uuid4()), json={"title": "x"}
    )
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("name", ["create-task", "list-tasks"])  # on asyncpg directly, and through the ORM
async def test_with_the_database_unreachable_the_function_answers_503_and_retry_after(
    jwt_secret: str, name: str
) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/todo"  # nothing listens there
    process = spawn_function(by_name(name), free_port(), function_env(nowhere, "test"))
    try:
        await asyncio.to_thread(process.wait_ready)
        async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:
            api = Api({name: client}, jwt_secret, f"user-{uuid.uuid4()}")
            route = by_name(name).routes[0]
            response = await api.request(route.method, route.path, json={"title": "x"})
    finally:
        process.stop()
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
