"""The local stack keeps itself running and says when it cannot: killed functions come back, the
broker's answer decides the producer's idempotence, `todo events` finds the stack's broker, and the
stack's crons never tick against the integration tests' database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from receiver import wait_for
from running import RunningStack

from todo_backend.devstack.runner import LOCAL_BROKER_PORT, STATE_FILE

Headers = Callable[[str], dict[str, str]]


def _state(stack: RunningStack) -> dict[str, Any]:
    return dict(json.loads((stack.data_dir / STATE_FILE).read_text()))


def _function_process(stack: RunningStack, name: str) -> psutil.Process:
    """The launcher process serving `name` (its process group leader), found by the PORT it was given."""
    port = _state(stack)["functions"][name].rsplit(":", 1)[1]
    runner = psutil.Process(_state(stack)["pid"])
    [leader] = [p for p in runner.children() if p.environ().get("PORT") == port]
    return leader


def _until_refused(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return
        assert time.monotonic() < deadline, f"port {port} still accepts connections"
        time.sleep(0.02)


def test_a_killed_function_is_started_again_and_its_next_requests_succeed(
    running_stack: RunningStack, token_for: Headers
) -> None:
    headers = token_for(f"kim-{uuid.uuid4()}")
    victim = _function_process(running_stack, "create-task")
    port = int(_state(running_stack)["functions"]["create-task"].rsplit(":", 1)[1])
    os.killpg(victim.pid, signal.SIGKILL)  # the whole pod, as the OOM killer would take it
    _until_refused(port)

    # The supervisor waits at least 0.5 s before starting it again: until then the stack says so.
    health = httpx.get(f"{running_stack.url}/healthz", timeout=10)
    assert health.status_code == 503 and "create-task" in health.json()["down"]

    started = time.monotonic()
    created = httpx.post(
        f"{running_stack.url}/api/tasks", json={"title": "after"}, headers=headers, timeout=30
    )
    waited = time.monotonic() - started
    assert created.status_code == 201, created.text
    assert waited < 20  # the gateway held the request while the function started again
    for _ in range(3):
        assert (
            httpx.post(f"{running_stack.url}/api/tasks", json={"title": "x"}, headers=headers).status_code
            == 201
        )
    # Healthy again: every function answers the gateway's probe. Probed at once, 48 processes on two
    # cores, just after one restarted, may take longer than the probe's 2 s to answer: asked until.
    wait_for(lambda: httpx.get(f"{running_stack.url}/healthz", timeout=10).json() == {"status": "ok"})

    replacement = _function_process(running_stack, "create-task")
    assert replacement.pid != victim.pid
    log = running_stack.log.read_text()
    assert "function create-task exited (code -9)" in log
    assert "function create-task restarted on" in log


def test_the_stack_asks_the_broker_whether_it_grants_the_idempotent_producer(
    running_stack: RunningStack, kafka_bootstrap_servers: str
) -> None:
    """The e2e broker is handed over as an external one, with KAFKA_ENABLE_IDEMPOTENCE unset."""
    log = running_stack.log.read_text()
    if "127.0.0.1" in kafka_bootstrap_servers and not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        assert f"the broker at {kafka_bootstrap_servers} rejects the idempotent producer" in log
    # Its eventing runs: nothing down, and the dispatcher's dead-letter producer did start.
    assert httpx.get(f"{running_stack.url}/healthz", timeout=10).json() == {"status": "ok"}
    assert "local eventing: the dispatcher stopped" not in log


def test_todo_events_tails_the_broker_of_the_running_stack(
    running_stack: RunningStack, kafka_bootstrap_servers: str, token_for: Headers
) -> None:
    assert not kafka_bootstrap_servers.endswith(f":{LOCAL_BROKER_PORT}")  # where `todo events` used to look
    task = httpx.post(
        f"{running_stack.url}/api/tasks", json={"title": "tail me"}, headers=token_for(f"lou-{uuid.uuid4()}")
    ).json()
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["TODO_DATA_DIR"] = str(running_stack.data_dir)
    todo = str(Path(sys.executable).with_name("todo"))
    events = subprocess.Popen(
        [todo, "events", "--from-beginning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert events.stdout is not None
        deadline = time.monotonic() + 30
        for line in events.stdout:
            if task["id"] in line and "dev.todo.task.created" in line:
                break
            assert time.monotonic() < deadline, "the created event was not printed in time"
    finally:
        events.terminate()
        _, errors = events.communicate(timeout=10)
    assert f"tailing the topics on {kafka_bootstrap_servers}" in errors


def test_todo_events_without_a_running_stack_says_how_to_find_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["TODO_DATA_DIR"] = str(tmp_path)
    (tmp_path / STATE_FILE).write_text(json.dumps({"pid": 2**22 + 1, "kafka_bootstrap_servers": "x:1"}))
    todo = str(Path(sys.executable).with_name("todo"))
    done = subprocess.run([todo, "events"], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "KAFKA_BOOTSTRAP_SERVERS" in done.stderr and "make run" in done.stderr


def test_the_stack_has_a_database_of_its_own(
    running_stack: RunningStack, database_url: str, stack_database_url: str, token_for: Headers
) -> None:
    assert _state(running_stack)["database_url"] == stack_database_url != database_url
    task = httpx.post(
        f"{running_stack.url}/api/tasks", json={"title": "mine"}, headers=token_for(f"max-{uuid.uuid4()}")
    ).json()

    async def count(url: str) -> int:
        connection = await asyncpg.connect(url)
        try:
            return int(
                await connection.fetchval("SELECT count(*) FROM task WHERE id = $1", uuid.UUID(task["id"]))
            )
        finally:
            await connection.close()

    assert asyncio.run(count(stack_database_url)) == 1
    assert asyncio.run(count(database_url)) == 0
