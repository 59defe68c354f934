"""A user's session against the local stack: every task route through the gateway, as the ingress."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx

Headers = Callable[[str], dict[str, str]]


def test_the_gateway_is_healthy_and_serves_the_openapi_document(stack: str) -> None:
    assert httpx.get(f"{stack}/healthz").json() == {"status": "ok"}
    document = httpx.get(f"{stack}/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert "/api/tasks/{id}/complete" in document["paths"]
    assert "swagger" in httpx.get(f"{stack}/docs").text.lower()


def test_a_task_lives_through_every_route(stack: str, token_for: Headers) -> None:
    alice = token_for(f"alice-{uuid.uuid4()}")
    with httpx.Client(base_url=stack, headers=alice) as api:
        created = api.post(
            "/api/tasks",
            json={"title": " Buy milk ", "due_date": "2030-01-02T10:00:00+01:00", "tags": ["Home", "home"]},
        )
        assert created.status_code == 201
        task = created.json()
        assert created.headers["location"] == f"/api/tasks/{task['id']}"
        assert (task["title"], task["tags"], task["due_date"]) == (
            "Buy milk",
            ["home"],
            "2030-01-02T09:00:00.000000Z",
        )

        assert api.get(f"/api/tasks/{task['id']}").headers["etag"] == '"1"'
        stale = api.patch(f"/api/tasks/{task['id']}", json={"priority": "high"}, headers={"If-Match": '"7"'})
        assert stale.status_code == 412
        patched = api.patch(
            f"/api/tasks/{task['id']}", json={"priority": "high"}, headers={"If-Match": '"1"'}
        )
        assert patched.json()["priority"] == "high" and patched.headers["etag"] == '"2"'
        replaced = api.put(f"/api/tasks/{task['id']}", json={"title": "Buy oat milk"})
        assert replaced.json()["priority"] == "medium" and replaced.json()["tags"] == []

        listed = api.get("/api/tasks", params={"q": "OAT", "status": "pending"}).json()
        assert [t["id"] for t in listed["items"]] == [task["id"]]

        completed = api.post(f"/api/tasks/{task['id']}/complete")
        assert completed.status_code == 200 and completed.json()["completed"] is True
        assert api.post(f"/api/tasks/{task['id']}/complete").json()["version"] == completed.json()["version"]

        assert api.delete(f"/api/tasks/{task['id']}").status_code == 204
        assert api.get(f"/api/tasks/{task['id']}").status_code == 404
        history = api.get(f"/api/tasks/{task['id']}/events").json()["items"]
        assert [e["type"] for e in history] == [
            "dev.todo.task.created",
            "dev.todo.task.updated",
            "dev.todo.task.updated",
            "dev.todo.task.completed",
            "dev.todo.task.deleted",
        ]


def test_another_user_sees_none_of_it(stack: str, token_for: Headers) -> None:
    alice, bob = token_for(f"alice-{uuid.uuid4()}"), token_for(f"bob-{uuid.uuid4()}")
    task = httpx.post(f"{stack}/api/tasks", json={"title": "private"}, headers=alice).json()
    for method, path in [
        ("GET", f"/api/tasks/{task['id']}"),
        ("PATCH", f"/api/tasks/{task['id']}"),
        ("DELETE", f"/api/tasks/{task['id']}"),
        ("POST", f"/api/tasks/{task['id']}/complete"),
        ("GET", f"/api/tasks/{task['id']}/events"),
    ]:
        response = httpx.request(
            method, f"{stack}{path}", headers=bob, json={} if method == "PATCH" else None
        )
        assert response.status_code == 404, (method, path)
    assert httpx.get(f"{stack}/api/tasks", headers=bob).json()["items"] == []


def test_bad_requests_get_problem_details(stack: str, token_for: Headers) -> None:
    no_token = httpx.get(f"{stack}/api/tasks")
    assert no_token.status_code == 401
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    assert no_token.headers["content-type"] == "application/problem+json"
    invalid = httpx.post(f"{stack}/api/tasks", json={"title": ""}, headers=token_for("carol"))
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "title"
    assert httpx.delete(f"{stack}/api/tasks").status_code == 405
    assert httpx.get(f"{stack}/api/nothing-here").status_code == 404


def test_each_function_is_reachable_by_name_locally(stack: str, token_for: Headers) -> None:
    response = httpx.get(f"{stack}/_fn/list-tasks/api/tasks", headers=token_for(f"dave-{uuid.uuid4()}"))
    assert response.status_code == 200 and response.json() == {"items": [], "next_cursor": None}


def test_hostile_paths_get_problems_not_server_errors(stack: str, token_for: Headers) -> None:
    headers = token_for(f"eve-{uuid.uuid4()}")
    # httpx sends these as written: it keeps percent-escapes and, with no dot segment, nothing to remove.
    for path in ["/api/tasks/%00", "/api/tasks/..%2Fwebhooks", "/_fn/get-task/..%2F..%2Fapi%2Fwebhooks"]:
        response = httpx.get(f"{stack}{path}", headers=headers)
        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{stack}/api/tasks/%C3%A9", headers=headers).status_code == 404
