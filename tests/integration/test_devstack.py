"""The local stack's own parts: the embedded PostgreSQL and the gateway in front of the functions."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from todo_backend.catalog import FUNCTIONS
from todo_backend.devstack.gateway import create_gateway
from todo_backend.devstack.postgres import EmbeddedPostgres
from todo_backend.devstack.runner import free_port, wait_for_port

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


def _gateway_client(upstreams: dict[str, str]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_gateway(upstreams))
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
        "query": request.url.query,
        "body": body.decode(),
    }
    return JSONResponse(seen, status_code=207, headers={"x-echo": "yes"})


@pytest.fixture
def echo_url() -> Iterator[str]:
    """A stand-in function on a real port, answering with what it received."""
    port = free_port()
    app = Starlette(routes=[Route("/{path:path}", _echo, methods=["GET", "POST"])])
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
        "query": "dry=1",
        "body": '{"title": "x"}',
    }
    assert direct.json() == {"method": "GET", "path": "/robots.txt", "query": "probe=1", "body": ""}


async def test_the_gateway_reports_a_function_that_does_not_answer() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    async with _gateway_client({"create-task": nobody}) as gateway:
        proxied = await gateway.post("/api/tasks", json={"title": "x"})
        health = await gateway.get("/healthz")

    assert proxied.status_code == 502 and proxied.headers["content-type"] == PROBLEM_JSON
    assert health.status_code == 503 and health.json()["down"] == ["create-task"]
