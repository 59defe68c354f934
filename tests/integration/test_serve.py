"""A function's container entry refuses to start on settings it must not run with."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from todo_backend.catalog import source_checkout
from todo_backend.settings import LOCAL_JWT_SECRET


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if k not in {"JWT_SECRET", "DATABASE_URL", "TODO_ENV"}}
    return subprocess.run(
        [sys.executable, "-m", "todo_backend.serve", "create_task"],
        env={**keep, "PORT": "1", **env},  # port 1: were it to start, it could not bind
        cwd=source_checkout(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"DATABASE_URL": "postgresql://db/todo"}, "jwt_secret"),
        (
            {"DATABASE_URL": "postgresql://db/todo", "JWT_SECRET": LOCAL_JWT_SECRET},
            "local development secret",
        ),
        ({"DATABASE_URL": "postgresql://db/todo", "JWT_SECRET": "too-short"}, "jwt_secret"),
        ({"JWT_SECRET": "x" * 40}, "database_url"),
    ],
    ids=["no-secret", "local-secret-in-production", "short-secret", "no-database"],
)
def test_a_function_refuses_to_start_without_a_safe_configuration(
    env: dict[str, str], complaint: str
) -> None:
    result = serve(env)
    assert result.returncode != 0
    assert "create-task refuses to start" in result.stderr
    assert complaint in result.stderr
