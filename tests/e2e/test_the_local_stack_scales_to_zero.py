"""`todo run` without `--warm` scales to zero as Knative does: healthy with no function running; a
function starts on its first request, event or cron tick, stops when idle, and a crashed one is down
until its next request starts it again. Counted from the processes the stack runs, never slept on."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
from conftest import _create_database
from running import RunningStack, todo_run
from sqlalchemy.engine import make_url

from todo_backend.devstack.broker import EmbeddedBroker
from todo_backend.devstack.runner import STATE_FILE

IDLE_SECONDS = 2
Headers = Callable[[str], dict[str, str]]


@pytest.fixture(scope="module")
def cold_stack(
    database_url: str, jwt_secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """A stack of its own (database and broker too: its triggers' consumer groups are the warm stack's
    names), its functions stopped after IDLE_SECONDS."""
    from todo_backend.migrations import upgrade

    name = f"todo_cold_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(database_url, name))
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    data_dir = tmp_path_factory.mktemp("cold-stack")
    with EmbeddedBroker() as broker:
        env = {
            **{k: v for k, v in os.environ.items() if k != "KAFKA_ENABLE_IDEMPOTENCE"},
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "JWT_SECRET": jwt_secret,
            "TODO_DATA_DIR": str(data_dir),
        }
        log = data_dir / "stack.log"
        with todo_run(env, log, options=("--idle-seconds", str(IDLE_SECONDS))) as gateway:
            yield RunningStack(gateway, log, data_dir)


def running(stack: RunningStack) -> dict[str, psutil.Process]:
    """The function processes the stack runs now, by function (their launchers, found by PORT)."""
    state = json.loads((stack.data_dir / STATE_FILE).read_text())
    ports = {url.rsplit(":", 1)[1]: name for name, url in state["functions"].items()}
    runner = psutil.Process(state["pid"])
    found = {}
    for child in runner.children():
        try:
            port = child.environ().get("PORT")
        except psutil.NoSuchProcess:
            continue
        if port in ports and child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
            found[ports[port]] = child
    return found


def until(check: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def cold_starts(stack: RunningStack, name: str) -> int:
    return len(re.findall(rf"cold start: function {re.escape(name)} ", stack.log.read_text()))


def test_a_request_starts_its_function_and_an_idle_one_stops(
    cold_stack: RunningStack, token_for: Headers
) -> None:
    assert httpx.get(f"{cold_stack.url}/healthz", timeout=10).json() == {"status": "ok"}
    # create-task is called by requests alone: nothing has started it.
    assert "create-task" not in running(cold_stack) and cold_starts(cold_stack, "create-task") == 0

    headers = token_for(f"zed-{uuid.uuid4()}")
    created = httpx.post(f"{cold_stack.url}/api/tasks", json={"title": "wake"}, headers=headers, timeout=30)
    assert created.status_code == 201, created.text  # the request waited for the cold start
    assert "create-task" in running(cold_stack) and cold_starts(cold_stack, "create-task") == 1
    assert re.search(
        r"cold start: function create-task accepted connections \d+ ms after", cold_stack.log.read_text()
    )

    # Requests while it is up start nothing more.
    for _ in range(3):
        assert (
            httpx.post(f"{cold_stack.url}/api/tasks", json={"title": "x"}, headers=headers).status_code == 201
        )
    assert cold_starts(cold_stack, "create-task") == 1

    until(
        lambda: "function create-task stopped after" in cold_stack.log.read_text(),
        IDLE_SECONDS + 10,
        "create-task never stopped",
    )
    assert "create-task" not in running(cold_stack)
    assert httpx.get(f"{cold_stack.url}/healthz", timeout=10).json() == {"status": "ok"}  # at zero, not down

    # A burst at a function at zero starts it once: every request waits for the same start.
    assert "list-tasks" not in running(cold_stack)
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.get(f"{cold_stack.url}/api/tasks", headers=headers, timeout=30), range(8)
            )
        )
    assert [a.status_code for a in answers] == [200] * 8
    assert cold_starts(cold_stack, "list-tasks") == 1

    # Its task's event woke the functions that consume it, none of which any request calls.
    until(lambda: cold_starts(cold_stack, "deliver-webhooks") >= 1, 60, "no event woke deliver-webhooks")
    fetched = httpx.get(f"{cold_stack.url}/api/tasks/{created.json()['id']}", headers=headers, timeout=30)
    assert fetched.status_code == 200


def test_a_crashed_function_is_down_until_its_next_request_starts_it(
    cold_stack: RunningStack, token_for: Headers
) -> None:
    headers = token_for(f"zoe-{uuid.uuid4()}")
    assert (
        httpx.post(
            f"{cold_stack.url}/api/tasks", json={"title": "a"}, headers=headers, timeout=30
        ).status_code
        == 201
    )
    victim = running(cold_stack)["create-task"]
    before = cold_starts(cold_stack, "create-task")
    os.killpg(victim.pid, signal.SIGKILL)
    until(lambda: "create-task" not in running(cold_stack), 10, "the killed function still runs")

    health = httpx.get(f"{cold_stack.url}/healthz", timeout=10)
    assert health.status_code == 503 and health.json()["down"] == ["create-task"]
    # Past its idle window the activator takes the dead process off its books: still down, not at zero.
    until(
        lambda: "function create-task exited (code -9); down until" in cold_stack.log.read_text(),
        IDLE_SECONDS + 10,
        "the activator never noticed the crash",
    )
    health = httpx.get(f"{cold_stack.url}/healthz", timeout=10)
    assert health.status_code == 503 and health.json()["down"] == ["create-task"]

    again = httpx.post(f"{cold_stack.url}/api/tasks", json={"title": "b"}, headers=headers, timeout=30)
    assert again.status_code == 201, again.text
    assert cold_starts(cold_stack, "create-task") == before + 1
    assert httpx.get(f"{cold_stack.url}/healthz", timeout=10).json() == {"status": "ok"}


def test_a_cron_tick_starts_its_function(cold_stack: RunningStack) -> None:
    # relay-outbox ticks every minute and is called by nothing else.
    until(lambda: cold_starts(cold_stack, "relay-outbox") >= 1, 65, "no tick woke relay-outbox")
    until(
        lambda: re.search(r"cron relay-outbox -> 200", cold_stack.log.read_text()),
        30,
        "the tick that woke relay-outbox was not answered",
    )
