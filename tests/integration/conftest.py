"""Integration fixtures: every function's real ASGI app, routed like the gateway, users and SQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from taskapi import Api, Sql, connect, load_apps

from todo_backend import catalog

# Every function that can be called: the routed ones, and the cron and CloudEvent entries.
IN_PROCESS = tuple(fn for fn in catalog.FUNCTIONS if fn.routes or fn.trigger != "http")


@pytest.fixture(scope="session")
async def function_clients(database_url: str) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """An httpx client per catalog function, over the app functions-framework builds for it (in process)."""
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")
        for name, app in load_apps(IN_PROCESS).items()
    }
    # One request to each routed function before the tests, as a readiness probe sends before traffic
    # arrives: a cold start's burst of concurrent first requests is its own test (test_function_metrics.py).
    # Cron and CloudEvent entries get none: any request to them does work (a tick, an event).
    for fn in IN_PROCESS:
        if fn.routes:
            route = fn.routes[0]
            probe = await clients[fn.name].request(route.method, route.path.format(id=uuid.uuid4()))
            assert probe.status_code == 401, probe.text
    yield clients
    for client in clients.values():
        await client.aclose()
    from todo_backend import db, pg

    await db.get_engine().dispose()
    await pg.close_pool()


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
