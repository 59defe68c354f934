"""Two users share a project through the whole local stack (issue 12): one creates a project, adds the
other, creates a task and assigns it; the other sees it, is notified of both (through the broker and
deliver-notification), completes it, and the owner sees the completion in the project's feed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from receiver import drained, wait_for

Headers = Callable[[str], dict[str, str]]


def test_two_users_share_a_project_assign_notify_and_complete(
    stack: str, kafka_bootstrap_servers: str, token_for: Headers
) -> None:
    ada, ben = f"ada-{uuid.uuid4()}", f"ben-{uuid.uuid4()}"
    as_ada, as_ben = token_for(ada), token_for(ben)
    project = httpx.post(f"{stack}/api/projects", json={"name": "Moving house"}, headers=as_ada)
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    member = {"user_id": ben, "role": "editor"}
    added = httpx.post(f"{stack}/api/projects/{project_id}/members", json=member, headers=as_ada)
    assert added.status_code == 201, added.text
    body = {"title": "Book the van", "project_id": project_id}
    task = httpx.post(f"{stack}/api/tasks", json=body, headers=as_ada).json()
    assigned = httpx.patch(f"{stack}/api/tasks/{task['id']}", json={"assignee_id": ben}, headers=as_ada)
    assert assigned.status_code == 200, assigned.text

    mine = httpx.get(f"{stack}/api/tasks", params={"assignee": "me"}, headers=as_ben).json()["items"]
    assert [t["id"] for t in mine] == [task["id"]]

    def notifications() -> list[dict[str, Any]]:
        return list(httpx.get(f"{stack}/api/notifications", headers=as_ben).json()["items"])

    wait_for(lambda: len(notifications()) >= 2)
    completed = httpx.post(f"{stack}/api/tasks/{task['id']}/complete", headers=as_ben)
    assert completed.status_code == 200 and completed.json()["completed"] is True, completed.text
    drained(kafka_bootstrap_servers)  # every event handled: a duplicate notification would show now

    assert sorted((n["kind"], n["project_id"]) for n in notifications()) == [
        ("added_to_project", project_id),
        ("assigned", project_id),
    ]
    assert httpx.get(f"{stack}/api/notifications", headers=as_ada).json()["items"] == []
    feed = httpx.get(f"{stack}/api/projects/{project_id}/events", headers=as_ada).json()["items"]
    assert [(e["type"], e["userid"]) for e in feed if e["subject"] == task["id"]] == [
        ("dev.todo.task.created", ada),
        ("dev.todo.task.updated", ada),
        ("dev.todo.task.completed", ben),
    ]
    outsider = token_for(f"cy-{uuid.uuid4()}")
    assert httpx.get(f"{stack}/api/tasks/{task['id']}", headers=outsider).status_code == 404
