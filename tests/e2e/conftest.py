"""The local stack as a user runs it: `todo run` (what `make run` calls) in its own process, over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from receiver import Receiver

from todo_backend.devstack.runner import free_port


@pytest.fixture(scope="session")
def stack(
    database_url: str, kafka_bootstrap_servers: str, jwt_secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The gateway URL of a running `todo run`, against the test database and broker."""
    port = free_port()
    log = tmp_path_factory.mktemp("stack") / "stack.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "KAFKA_ENABLE_IDEMPOTENCE": "false",
        "JWT_SECRET": jwt_secret,
    }
    todo = Path(sys.executable).with_name("todo")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(todo), "run", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"todo run exited:\n{log.read_text()[-5000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the stack was not healthy in time:\n{log.read_text()[-5000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
