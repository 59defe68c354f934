"""Integration fixtures: the task functions' real ASGI apps, routed like the gateway, users and SQL."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from functions_framework.aio import create_asgi_app
from taskapi import TASK_FUNCTIONS, Api, Sql, connect


@pytest.fixture(scope="session")
async def function_clients(database_url: str) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """An httpx client per task function, over the app functions-framework builds for it (in process)."""
    # functions-framework loads each source as module "main", appends its folder to sys.path and
    # records the target in the environment; undo that so nothing leaks into other tests or processes.
    saved_env = {k: os.environ.get(k) for k in ("FUNCTION_TARGET", "FUNCTION_SIGNATURE_TYPE")}
    saved_path, saved_main = list(sys.path), sys.modules.get("main")
    try:
        apps = {
            fn.name: create_asgi_app(target=fn.entry, source=str(fn.source), signature_type=fn.signature_type)
            for fn in TASK_FUNCTIONS
        }
    finally:
        sys.path[:] = saved_path
        if saved_main is None:
            sys.modules.pop("main", None)
        else:
            sys.modules["main"] = saved_main
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")
        for name, app in apps.items()
    }
    # One request each before the tests, as a readiness probe sends before traffic arrives: a cold
    # start's burst of concurrent first requests is its own test (test_function_metrics.py).
    for fn in TASK_FUNCTIONS:
        route = fn.routes[0]
        probe = await clients[fn.name].request(route.method, route.path.format(id=uuid.uuid4()))
        assert probe.status_code == 401, probe.text
    yield clients
    for client in clients.values():
        await client.aclose()
    from todo_backend import db

    await db.get_engine().dispose()


@pytest.fixture(scope="session")
async def sql(database_url: str) -> AsyncIterator[Sql]:
    db = await connect(database_url)
    yield db
    await db.pool.close()


@pytest.fixture
def new_user(function_clients: dict[str, httpx.AsyncClient], jwt_secret: str) -> Callable[[], Api]:
    """A client for a user no other test has: isolation without truncating tables."""
    return lambda: Api(function_clients, jwt_secret, f"user-{uuid.uuid4()}")


@pytest.fixture
def alice(new_user: Callable[[], Api]) -> Api:
    return new_user()


@pytest.fixture
def bob(new_user: Callable[[], Api]) -> Api:
    return new_user()
