"""A function's container entry: it refuses to start on settings it must not run with, and once started
it logs one JSON object per line, naming the function and the request or event it handles."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from taskapi import mint

from todo_backend.catalog import source_checkout
from todo_backend.devstack.runner import free_port, wait_for_port
from todo_backend.events import TaskCompleted, to_outbox_row
from todo_backend.fields import utcnow
from todo_backend.models import Task
from todo_backend.settings import LOCAL_JWT_SECRET
from todo_backend.stored import to_cloudevent_json


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if k not in {"JWT_SECRET", "DATABASE_URL", "TODO_ENV"}}
    return subprocess.run(
        [sys.executable, "-m", "todo_backend.serve", "create_task"],
        env={**keep, "PORT": "1", **env},  # port 1: were it to start, it could not bind
        cwd=source_checkout(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"DATABASE_URL": "postgresql://db/todo"}, "jwt_secret"),
        (
            {"DATABASE_URL": "postgresql://db/todo", "JWT_SECRET": LOCAL_JWT_SECRET},
            "local development secret",
        ),
        ({"DATABASE_URL": "postgresql://db/todo", "JWT_SECRET": "too-short"}, "jwt_secret"),
        ({"JWT_SECRET": "x" * 40}, "database_url"),
    ],
    ids=["no-secret", "local-secret-in-production", "short-secret", "no-database"],
)
def test_a_function_refuses_to_start_without_a_safe_configuration(
    env: dict[str, str], complaint: str
) -> None:
    result = serve(env)
    assert result.returncode != 0
    assert "create-task refuses to start" in result.stderr
    assert complaint in result.stderr


@contextlib.contextmanager
def serving(folder: str, env: dict[str, str], stdout: Path) -> Iterator[str]:
    """`python -m todo_backend.serve <folder>` as its image runs it, its stdout in `stdout`; its URL."""
    port = free_port()
    drop = {"KAFKA_BOOTSTRAP_SERVERS", "LOG_FORMAT", "LOG_LEVEL", "HOST", "FUNCTION_SOURCE"}
    keep = {k: v for k, v in os.environ.items() if k not in drop}
    with stdout.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "todo_backend.serve", folder],
            env={**keep, "PORT": str(port), "PYTHONUNBUFFERED": "1", **env},
            cwd=source_checkout(),
            stdout=out,
            stderr=subprocess.PIPE,
            start_new_session=True,  # gunicorn's master and the worker it forks, stopped together
        )
    try:
        wait_for_port(port, 30, alive=lambda: process.poll() is None)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=30)


def json_lines(stdout: Path, until: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """Every line of `stdout` parsed as one JSON object, once `until` holds for them (the worker writes
    its lines as it handles a request, perhaps just after the response)."""
    deadline = time.monotonic() + 10
    while True:
        entries = [json.loads(line) for line in stdout.read_text().splitlines()]
        if until(entries) or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


def test_a_function_logs_one_json_object_per_line_with_its_name_and_the_request_id(
    tmp_path: Path, jwt_secret: str
) -> None:
    stdout = tmp_path / "stdout"
    # Nothing listens on port 1: the request's database is unavailable, which the function logs.
    env = {"DATABASE_URL": "postgresql://127.0.0.1:1/todo", "JWT_SECRET": jwt_secret, "TODO_ENV": "test"}
    token = mint(jwt_secret, "logged-user")
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": "req-from-knative"}
    with serving("create_task", env, stdout) as url:
        given = httpx.post(f"{url}/api/tasks", json={"title": "logged"}, headers=headers, timeout=10)
        del headers["X-Request-Id"]
        generated = httpx.post(f"{url}/api/tasks", json={"title": "logged"}, headers=headers, timeout=10)
        assert (given.status_code, generated.status_code) == (503, 503)
        entries = json_lines(stdout, lambda entries: len(entries) >= 2)
    assert [(e["function"], e["level"], e["logger"]) for e in entries] == [
        ("create-task", "WARNING", "todo_backend.http")
    ] * 2
    assert entries[0]["request_id"] == "req-from-knative"
    assert entries[1]["request_id"] not in ("", "req-from-knative")
    assert all("dependency unavailable" in e["message"] and e["time"].endswith("Z") for e in entries)


def test_a_consumers_log_lines_carry_the_events_id_type_and_subject(
    tmp_path: Path, database_url: str, jwt_secret: str
) -> None:
    stdout = tmp_path / "stdout"
    env = {"DATABASE_URL": database_url, "JWT_SECRET": jwt_secret, "TODO_ENV": "test"}
    task = Task(user_id=f"user-{uuid.uuid4()}", title="logged", completed=True, completed_at=utcnow())
    completed = to_outbox_row(TaskCompleted(task, ("completed",)), "complete-task")
    completed.id, completed.sequence = uuid.uuid4(), 1
    event = to_cloudevent_json(completed)
    poison = {**event, "id": str(uuid.uuid4()), "type": "dev.todo.task.created"}  # not a type it takes
    headers = {"Content-Type": "application/cloudevents+json"}
    with serving("schedule_next_occurrence", env, stdout) as url:
        for sent in (event, event, poison):  # the second is a redelivery, acknowledged and logged at INFO
            httpx.post(url, content=json.dumps(sent), headers=headers, timeout=10)
        entries = json_lines(stdout, lambda entries: len(entries) >= 2)
    duplicate, rejected = entries
    assert (duplicate["level"], duplicate["function"]) == ("INFO", "schedule-next-occurrence")
    assert "duplicate delivery" in duplicate["message"]
    assert (duplicate["ce_id"], duplicate["ce_type"], duplicate["ce_subject"]) == (
        event["id"],
        "dev.todo.task.completed",
        str(task.id),
    )
    assert (rejected["level"], rejected["ce_id"], rejected["ce_type"]) == (
        "ERROR",
        poison["id"],
        "dev.todo.task.created",
    )
    assert "request_id" not in duplicate  # an event entry is not an HTTP request handler's
