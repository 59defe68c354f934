"""Integration fixtures: every function's real ASGI app, routed like the gateway, users and SQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from taskapi import Api, Sql, connect, load_apps

from todo_backend import catalog
from todo_backend.migrations import upgrade

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
            url = route.path.format(id=uuid.uuid4(), comment_id=uuid.uuid4(), user_id="probe")
            probe = await clients[fn.name].request(route.method, url)
            # One that takes no bearer token (the calendar feed): without its own secret, there is none.
            assert probe.status_code == (401 if fn.bearer else 404), probe.text
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


@pytest.fixture
def fresh_database_url(database_url: str) -> Iterator[str]:
    """A database of this test's own on the test server, migrated from empty the way `todo migrate` does.

    Not the session database: other tests may have left rows or objects there, and the point is what
    the migrations alone create."""
    name = f"todo_drift_{uuid.uuid4().hex[:12]}"
    asyncio.run(_on_server(database_url, f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        # FORCE: a connection the test failed to close must not leave the database behind.
        asyncio.run(_on_server(database_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


async def _on_server(server_url: str, statement: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
