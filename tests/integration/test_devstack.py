"""The local stack's own parts: the embedded PostgreSQL, the gateway in front of the functions, the local
eventing and what decides the producer's idempotence."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import asyncpg
import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from todo_backend.catalog import FUNCTIONS, Function, by_name
from todo_backend.devstack.gateway import METHODS, create_gateway
from todo_backend.devstack.postgres import EmbeddedPostgres
from todo_backend.devstack.runner import (
    LocalEventing,
    decide_idempotence,
    free_port,
    function_env,
    spawn_function,
    wait_for_port,
)
from todo_backend.settings import Settings

PROBLEM_JSON = "application/problem+json"


async def _started(data_dir: Path) -> EmbeddedPostgres:
    server = EmbeddedPostgres(data_dir)
    await asyncio.to_thread(server.start)
    return server


async def test_embedded_postgres_keeps_its_data_across_a_restart_after_a_crash(tmp_path: Path) -> None:
    data_dir = tmp_path / "postgres"
    first = await _started(data_dir)
    try:
        assert first.url is not None and first.url.startswith("postgresql://postgres@127.0.0.1:")
        connection = await asyncpg.connect(first.url)
        await connection.execute("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('still here')")
        await connection.close()
    finally:
        await asyncio.to_thread(first.stop)
    # A killed run leaves postmaster.pid behind, and its PID may by now belong to a live process
    # that is not PostgreSQL (here: this one), which postgres itself would refuse to start over.
    (data_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{data_dir}\n")

    second = await _started(data_dir)
    try:
        assert second.url is not None
        connection = await asyncpg.connect(second.url)
        assert await connection.fetchval("SELECT note FROM kept") == "still here"
        await connection.close()
    finally:
        await asyncio.to_thread(second.stop)


def _gateway_client(upstreams: dict[str, str], metrics: dict[str, str] | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_gateway(upstreams, metrics=metrics))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


async def test_the_gateway_answers_unknown_paths_and_methods_with_problems() -> None:
    async with _gateway_client({}) as gateway:
        unknown_path = await gateway.get("/api/no-such-thing")
        wrong_method = await gateway.delete("/api/tasks")
        unknown_function = await gateway.get("/_fn/no-such-function/anything")

    for response, status in ((unknown_path, 404), (wrong_method, 405), (unknown_function, 404)):
        assert response.status_code == status
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["status"] == status
        assert set(response.json()) == {"type", "title", "status", "detail"}
    methods = sorted({r.method for fn in FUNCTIONS for r in fn.routes if r.path == "/api/tasks"})
    assert wrong_method.headers["allow"] == ", ".join(methods)


async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    seen = {
        "method": request.method,
        "path": request.url.path,
        "raw_path": request.scope["raw_path"].decode("latin-1"),
        "query": request.url.query,
        "body": body.decode(),
    }
    return JSONResponse(seen, status_code=207, headers={"x-echo": "yes"})


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    """A stand-in function on a real port, answering with what it received."""
    port = free_port()
    app = Starlette(routes=[Route("/{path:path}", _echo, methods=METHODS)])
    server = uvicorn.Server(uvicorn.Config(app, "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port, timeout=10)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


async def test_the_gateway_forwards_a_request_to_the_function_that_owns_its_route(echo_url: str) -> None:
    async with _gateway_client({"create-task": echo_url}) as gateway:
        routed = await gateway.post("/api/tasks?dry=1", content=b'{"title": "x"}')
        direct = await gateway.get("/_fn/create-task/robots.txt?probe=1")

    assert routed.status_code == 207 and routed.headers["x-echo"] == "yes"
    assert routed.json() == {
        "method": "POST",
        "path": "/api/tasks",
        "raw_path": "/api/tasks",
        "query": "dry=1",
        "body": '{"title": "x"}',
    }
    assert direct.json() == {
        "method": "GET",
        "path": "/robots.txt",
        "raw_path": "/robots.txt",
        "query": "probe=1",
        "body": "",
    }


async def test_the_gateway_reports_a_function_that_does_not_answer() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    transport = httpx.ASGITransport(app=create_gateway({"create-task": nobody}, start_wait_seconds=0.5))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as gateway:
        proxied = await gateway.post("/api/tasks", json={"title": "x"})
        health = await gateway.get("/healthz")

    assert proxied.status_code == 502 and proxied.headers["content-type"] == PROBLEM_JSON
    assert health.status_code == 503 and health.json()["down"] == ["create-task"]


# --- hostile paths ------------------------------------------------------------------------------------


async def _asgi(app: Starlette, method: str, raw_path: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request straight into the ASGI app with `raw_path` exactly as a client sent it: an HTTP
    client would normalise dot segments away before they reached the gateway."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path.decode("latin-1")),  # as uvicorn decodes it
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"gateway")],
        "client": ("127.0.0.1", 50000),
        "server": ("gateway", 80),
    }
    answered = asyncio.Event()
    requested = False
    start: dict[str, Any] = {}
    body = bytearray()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))
            if not message.get("more_body"):
                answered.set()

    await app(scope, receive, send)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start["headers"]}
    return int(start["status"]), headers, bytes(body)


def _everywhere(url: str) -> dict[str, str]:
    return {fn.name: url for fn in FUNCTIONS}


HOSTILE_PATHS = [
    b"/api/tasks/%00",
    b"/api/tasks/%0a",
    b"/api/tasks/..%2Fwebhooks",
    b"/api/tasks/..%2f..%2fwebhooks",
    b"/api/tasks/%2e%2e",
    b"/api/tasks/%2E%2E/events",
    b"/api/tasks/./events",
    b"/api%2Ftasks",
    b"/api/tasks/a%5Cb",
    b"/_fn/get-task/..%2F..%2Fapi%2Fwebhooks",
    b"/_fn/list-tasks/../../api/webhooks",
    b"/_fn/list%2Dtasks%2F/x",
]


@pytest.mark.parametrize("raw_path", HOSTILE_PATHS, ids=[p.decode() for p in HOSTILE_PATHS])
async def test_the_gateway_refuses_paths_that_would_route_differently_once_decoded(
    echo_url: str, raw_path: bytes
) -> None:
    status, headers, body = await _asgi(create_gateway(_everywhere(echo_url)), "GET", raw_path)

    assert status == 400, body
    assert headers["content-type"] == PROBLEM_JSON
    assert "x-echo" not in headers  # nothing reached a function
    assert json.loads(body)["status"] == 400


@pytest.fixture(scope="module")
def gateway_loop(echo_url: str) -> Iterator[tuple[asyncio.AbstractEventLoop, Starlette]]:
    """One gateway on one loop for every generated example, so its connection pool lives across them."""
    loop = asyncio.new_event_loop()
    yield loop, create_gateway(_everywhere(echo_url))
    loop.close()


_FIXED_SEGMENTS = [
    *("..", ".", "%2e%2e", "%2E.", "%2F", "%2f", "%5C", "%00", "%0a", "%7f", "%", "%zz", "%C3%A9"),
    *("%ED%A0%80", "tasks", "api", "_fn", "get-task", "events", "complete", str(uuid.uuid4()), ""),
]
SEGMENTS = st.one_of(
    st.sampled_from(_FIXED_SEGMENTS),
    # What a client percent-encodes: any text (lone surrogates cannot be encoded, %ED%A0%80 stands in).
    st.text(st.characters(exclude_categories=["Cs"])).map(lambda text: quote(text, safe="")),
    # What a client may send unencoded: any visible ASCII but the separators of path, query, fragment.
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#"), min_size=1),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prefix=st.sampled_from(["/", "/api/", "/api/tasks/", "/_fn/", "/_fn/get-task/", "/healthz/"]),
    segments=st.lists(SEGMENTS, max_size=5),
    method=st.sampled_from(METHODS),
)
def test_no_path_gets_a_5xx_from_the_gateway_nor_reaches_a_function_decoded(
    gateway_loop: tuple[asyncio.AbstractEventLoop, Starlette], prefix: str, segments: list[str], method: str
) -> None:
    loop, gateway = gateway_loop
    raw_path = (prefix + "/".join(segments)).encode()
    status, headers, body = loop.run_until_complete(_asgi(gateway, method, raw_path))

    assert status < 500, (status, body)
    if "x-echo" not in headers:
        # Answered by the gateway itself: a problem, or one of its own pages (or a slash redirect to one).
        if status >= 400 and method != "HEAD":
            assert headers.get("content-type") == PROBLEM_JSON, (raw_path, method, status, body)
        return
    # Forwarded: the function decodes the very segments the gateway routed on, never one more.
    sent = raw_path.decode()
    if sent.startswith("/_fn/"):
        sent = "/" + sent.split("/", 3)[3]
    if method != "HEAD":
        received = json.loads(body)["raw_path"]
        assert unquote(received) == unquote(sent)
        assert "%2f" not in received.lower()


# --- retries ------------------------------------------------------------------------------------------


class ClosingUpstream:
    """Answers the first request on each connection and keeps it alive, then closes it as the next
    request arrives, unanswered: a keep-alive timeout firing just as the gateway reuses the connection."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for answered in range(2):
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                self.received.append(head.split(b" ", 1)[0].decode())
                if answered:
                    break
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def closing_upstream() -> AsyncIterator[tuple[str, ClosingUpstream]]:
    upstream = ClosingUpstream()
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", upstream
    server.close()
    await server.wait_closed()


async def test_a_get_on_a_pooled_connection_closed_under_it_is_sent_again(
    closing_upstream: tuple[str, ClosingUpstream],
) -> None:
    url, upstream = closing_upstream
    async with _gateway_client({"list-tasks": url}) as gateway:
        first = await gateway.get("/api/tasks")
        second = await gateway.get("/api/tasks")  # reuses the pooled connection, which closes unanswered

    assert (first.status_code, second.status_code) == (200, 200), second.text
    assert upstream.received == ["GET", "GET", "GET"]


async def test_a_post_that_may_have_arrived_is_never_sent_twice(
    closing_upstream: tuple[str, ClosingUpstream],
) -> None:
    url, upstream = closing_upstream
    async with _gateway_client({"create-task": url}) as gateway:
        first = await gateway.post("/api/tasks", json={"title": "once"})
        second = await gateway.post("/api/tasks", json={"title": "at most once"})

    assert first.status_code == 200
    assert second.status_code == 502 and second.headers["content-type"] == PROBLEM_JSON
    assert upstream.received == ["POST", "POST"]  # each POST reached the function once


async def test_a_request_waits_for_a_function_that_is_starting() -> None:
    """Nothing reaches a function that refuses connections, so any method may wait for it (bounded),
    as for one the supervisor is restarting."""
    received: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    port = free_port()
    servers: list[asyncio.Server] = []

    async def start_late() -> None:
        await asyncio.sleep(1.0)  # the function is still starting when the request arrives
        servers.append(await asyncio.start_server(answer, "127.0.0.1", port))

    starting = asyncio.create_task(start_late())
    try:
        async with _gateway_client({"create-task": f"http://127.0.0.1:{port}"}) as gateway:
            created = await gateway.post("/api/tasks", content=b"{}")
    finally:
        await starting
        for server in servers:
            server.close()
    assert created.status_code == 201
    assert len(received) == 1 and received[0].startswith(b"POST /api/tasks ")


# --- the gateway's /metrics ----------------------------------------------------------------------------


def _series(exposition: str, name: str) -> list[Sample]:
    return [s for f in text_string_to_metric_families(exposition) for s in f.samples if s.name == name]


def _samples(exposition: str, name: str) -> dict[str, float]:
    """The values of the series `name`, by their function label."""
    return {sample.labels["function"]: sample.value for sample in _series(exposition, name)}


async def _metrics_once_up(gateway: httpx.AsyncClient, functions: list[str]) -> str:
    """The gateway's /metrics once each of `functions` has been read: their exporters start just after
    the first response they send, which the client may receive first."""
    deadline = time.monotonic() + 10
    while True:
        page = await gateway.get("/metrics")
        assert page.status_code == 200, page.text
        up = _samples(page.text, "todo_gateway_scrape_up")
        if all(up.get(name) == 1 for name in functions) or time.monotonic() > deadline:
            return page.text
        await asyncio.sleep(0.1)


async def test_the_gateway_serves_every_function_process_metrics_by_function_and_reports_one_down() -> None:
    running = ["create-task", "get-task"]
    # Nothing in them connects to the database before a request is authenticated; these are not.
    env = function_env("postgresql://unused@127.0.0.1:1/unused", "test")
    spawned_at = time.monotonic()
    processes = [spawn_function(by_name(name), free_port(), env, free_port()) for name in running]
    try:
        await asyncio.gather(*(asyncio.to_thread(p.wait_ready) for p in processes))
        ready_at = time.monotonic()
        down = f"http://127.0.0.1:{free_port()}"  # list-tasks: nothing listens there, nor on its exporter
        upstreams = {**{p.fn.name: p.url for p in processes}, "list-tasks": down}
        exporters = {**{p.fn.name: p.metrics_url or "" for p in processes}, "list-tasks": down}
        async with _gateway_client(upstreams, exporters) as gateway:
            idle = await gateway.get("/metrics")
            first = [
                await gateway.post("/api/tasks", json={"title": "x"}),
                await gateway.get(f"/api/tasks/{uuid.uuid4()}"),
            ]
            answered_at = time.monotonic()
            after_first = await _metrics_once_up(gateway, running)
            await gateway.post("/api/tasks", json={"title": "again"})
            await asyncio.sleep(0.2)  # its observation runs after the response
            after_second = (await gateway.get("/metrics")).text
    finally:
        for process in processes:
            process.stop()

    assert [r.status_code for r in first] == [401, 401]
    # Before any request (no exporter runs until a first observation) as after: reported, not an error.
    assert idle.status_code == 200 and idle.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert set(_samples(idle.text, "todo_gateway_scrape_up")) == {*running, "list-tasks"}

    assert _samples(after_first, "todo_gateway_scrape_up") == {**dict.fromkeys(running, 1), "list-tasks": 0}
    assert re.search(r"(?m)^# list-tasks: not scraped: nothing listens", after_first)
    requests = {
        (s.labels["function"], s.labels["method"], s.labels["status"]): s.value
        for s in _series(after_first, "todo_http_requests_total")
    }
    assert requests == {("create-task", "POST", "401"): 1, ("get-task", "GET", "401"): 1}
    # Each process's own series, under its own name: the runtime's too (a process collector sample).
    assert set(_samples(after_first, "process_cpu_seconds_total")) == set(running)

    cold = _samples(after_first, "todo_cold_start_seconds")
    assert set(cold) == set(running)
    for seconds in cold.values():
        # From the process's start, which was before it listened (gunicorn's master imports the function
        # first), not from the start of its forked worker; and no later than its first answer.
        assert ready_at - spawned_at - 0.2 <= seconds <= answered_at - spawned_at + 0.1
    assert _samples(after_second, "todo_cold_start_seconds") == cold  # observed once per process


# --- the local eventing -------------------------------------------------------------------------------


def _eventing_settings(bootstrap: str, idempotence: bool) -> Settings:
    """Topics of this test's own: its trigger must not consume (or commit) other tests' events."""
    suffix = uuid.uuid4().hex[:8]
    return Settings(
        database_url="unused",
        jwt_secret="x" * 32,
        todo_env="test",
        kafka_bootstrap_servers=bootstrap,
        kafka_enable_idempotence=idempotence,
        topic_task_events=f"eventing-{suffix}",
        topic_reminders=f"eventing-reminders-{suffix}",
    )


def _until_down(eventing: LocalEventing, seconds: float = 20.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while not eventing.down() and time.monotonic() < deadline:
        time.sleep(0.05)
    return eventing.down()


async def _health(also_down: Callable[[], list[str]]) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_gateway({}, also_down)), base_url="http://gateway"
    ) as gateway:
        return await gateway.get("/healthz")


def test_a_dispatcher_killed_by_a_broker_refusing_the_idempotent_producer_makes_the_stack_unhealthy(
    kafka_bootstrap_servers: str,
) -> None:
    """The reported failure: Tansu rejects InitProducerId, the dead-letter producer dies with the
    dispatcher, and /healthz said 200 while every trigger was dead."""
    nobody = f"http://127.0.0.1:{free_port()}/"
    eventing = LocalEventing(
        {by_name("deliver-webhooks"): nobody},
        {by_name("check-due-tasks"): nobody},
        _eventing_settings(kafka_bootstrap_servers, idempotence=True),
    )
    eventing.start()
    try:
        assert _until_down(eventing) == ["local-eventing/dispatcher"]
        health = asyncio.run(_health(eventing.down))
    finally:
        eventing.stop()
    assert health.status_code == 503
    assert health.json() == {"status": "unavailable", "down": ["local-eventing/dispatcher"]}
    assert eventing.down() == ["local-eventing"]  # its thread is gone too, once stopped


def test_a_dead_scheduler_makes_the_stack_unhealthy(kafka_bootstrap_servers: str) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/"
    broken = Function("broken-cron", "a schedule croniter cannot read", schedule="every now and then")
    eventing = LocalEventing(
        {by_name("deliver-webhooks"): nobody},
        {by_name("check-due-tasks"): nobody, broken: nobody},
        _eventing_settings(kafka_bootstrap_servers, idempotence=False),
    )
    healthy = asyncio.run(_health(lambda: []))
    eventing.start()
    try:
        assert _until_down(eventing) == ["local-eventing/scheduler"]
        health = asyncio.run(_health(eventing.down))
    finally:
        eventing.stop()
    assert healthy.status_code == 200
    assert health.status_code == 503 and health.json()["down"] == ["local-eventing/scheduler"]


# --- the idempotent producer: asked, not assumed -------------------------------------------------------


def test_a_broker_refusing_the_idempotent_producer_turns_it_off_and_says_so(
    kafka_bootstrap_servers: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="todo_backend.devstack.runner"):
        assert decide_idempotence(kafka_bootstrap_servers, None) is False
    assert "rejects the idempotent producer" in caplog.text
    assert "KAFKA_ENABLE_IDEMPOTENCE" in caplog.text


def test_asking_for_the_idempotent_producer_a_broker_refuses_stops_the_stack_naming_the_setting(
    kafka_bootstrap_servers: str,
) -> None:
    with pytest.raises(SystemExit, match="KAFKA_ENABLE_IDEMPOTENCE"):
        decide_idempotence(kafka_bootstrap_servers, "true")


def test_turning_the_idempotent_producer_off_asks_nothing() -> None:
    assert decide_idempotence(f"127.0.0.1:{free_port()}", "false") is False
    with pytest.raises(SystemExit, match="does not answer"):
        decide_idempotence(f"127.0.0.1:{free_port()}", None)
