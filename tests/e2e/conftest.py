"""The local stack as a user runs it: `todo run` (what `make run` calls) in its own process, over HTTP.

The stack gets a database and a broker of its own: its crons tick every minute and its triggers
consume whatever reaches its topics, which must never touch what the integration tests count."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import jwt
import pytest
from receiver import Receiver
from running import RunningStack, todo_run
from sqlalchemy.engine import make_url

from todo_backend.devstack.runner import free_port


@pytest.fixture(scope="session")
def stack_database_url(database_url: str) -> str:
    """A database of the stack's own, on the test server, migrated."""
    from todo_backend.migrations import upgrade

    name = f"todo_e2e_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(database_url, name))
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url


async def _create_database(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def kafka_bootstrap_servers() -> Iterator[str]:
    """The stack's broker: KAFKA_BOOTSTRAP_SERVERS (shared, then), or an embedded Tansu of its own,
    handed to the stack as an external broker is, so the stack must find out that it refuses the
    idempotent producer by asking it."""
    from todo_backend.devstack.broker import EmbeddedBroker

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def running_stack(
    stack_database_url: str,
    kafka_bootstrap_servers: str,
    jwt_secret: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningStack]:
    """A running `todo run` against the stack's own database and broker, as a user starts it."""
    data_dir = tmp_path_factory.mktemp("stack")
    env = {
        **{k: v for k, v in os.environ.items() if k != "KAFKA_ENABLE_IDEMPOTENCE"},
        "DATABASE_URL": stack_database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "JWT_SECRET": jwt_secret,
        "TODO_DATA_DIR": str(data_dir),
    }
    log = data_dir / "stack.log"
    with todo_run(env, log) as url:
        yield RunningStack(url, log, data_dir)


@pytest.fixture(scope="session")
def stack(running_stack: RunningStack) -> str:
    """The gateway URL of the running stack."""
    return running_stack.url


@pytest.fixture(scope="session")
def token_for(jwt_secret: str) -> Callable[[str], dict[str, str]]:
    """Authorization headers for a user, as `make token` would mint them."""

    def headers(user: str) -> dict[str, str]:
        claims = {"sub": user, "exp": datetime.now(UTC) + timedelta(hours=1)}
        return {"Authorization": f"Bearer {jwt.encode(claims, jwt_secret, algorithm='HS256')}"}

    return headers


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook endpoint on 127.0.0.1 that records what it receives."""
    r = Receiver(free_port())
    yield r
    r.stop()
