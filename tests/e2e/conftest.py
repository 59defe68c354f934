"""The local stack as a user runs it: `todo run` (what `make run` calls) in its own process, over HTTP."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from receiver import Receiver

from todo_backend.devstack.runner import free_port, todo_run


@pytest.fixture(scope="session")
def stack(
    database_url: str, kafka_bootstrap_servers: str, jwt_secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The gateway URL of a running `todo run`, against the test database and broker."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "KAFKA_ENABLE_IDEMPOTENCE": "false",
        "JWT_SECRET": jwt_secret,
    }
    with todo_run(env, tmp_path_factory.mktemp("stack") / "stack.log") as url:
        yield url


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
