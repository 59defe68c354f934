"""Test-side helpers for the API: the functions' in-process apps, a per-user client routed by the catalog,
SQL access, problem checks."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import httpx
import jwt
from functions_framework.aio import create_asgi_app
from starlette.types import ASGIApp

from todo_backend import catalog

# The functions of the task API (issue 2): every catalog function with a route under /api/tasks.
TASK_FUNCTIONS = tuple(
    fn for fn in catalog.FUNCTIONS if any(r.path.split("/")[:3] == ["", "api", "tasks"] for r in fn.routes)
)
PROBLEM_JSON = "application/problem+json"
MAX_PAGES = 100  # more than any test lists: paging that does not end is a failure, not a hang
FRESH = object()  # a fresh valid token for the client's user


def load_apps(functions: Iterable[catalog.Function]) -> dict[str, ASGIApp]:
    """Each function's app as functions-framework builds it, in process, by function name."""
    # functions-framework loads each source as module "main", appends its folder to sys.path and
    # records the target in the environment; undo that so nothing leaks into other tests or processes.
    saved_env = {k: os.environ.get(k) for k in ("FUNCTION_TARGET", "FUNCTION_SIGNATURE_TYPE")}
    saved_path, saved_main = list(sys.path), sys.modules.get("main")
    try:
        return {
            fn.name: create_asgi_app(target=fn.entry, source=str(fn.source), signature_type=fn.signature_type)
            for fn in functions
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


def mint(secret: str, sub: str, lifetime: int = 300, **claims: Any) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + lifetime, **claims}, secret, algorithm="HS256")


@dataclass(frozen=True)
class Api:
    """One user's view of the API: each request goes to the function the catalog routes it to."""

    clients: Mapping[str, httpx.AsyncClient]
    secret: str
    user_id: str

    def as_user(self, user_id: str) -> Api:
        return replace(self, user_id=user_id)

    def token(self) -> str:
        return mint(self.secret, self.user_id)

    async def request(
        self,
        method: str,
        url: str,
        *,
        token: object = FRESH,
        headers: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        """`token`: FRESH for a valid one, None for no Authorization header, or the raw JWT to send."""
        match = catalog.match_route(method, httpx.URL(url).path)
        assert match is not None, f"no catalog function serves {method} {url}"
        sent = dict(headers or {})
        if token is FRESH:
            sent.setdefault("Authorization", f"Bearer {self.token()}")
        elif token is not None:
            sent.setdefault("Authorization", f"Bearer {token}")
        return await self.clients[match[0].name].request(method, url, headers=sent, **kw)

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", url, **kw)

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", url, **kw)

    async def patch(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("PATCH", url, **kw)

    async def put(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("PUT", url, **kw)

    async def delete(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kw)

    async def create(self, **fields: Any) -> dict[str, Any]:
        """Create a task (title defaults to "task") and return its JSON."""
        response = await self.post("/api/tasks", json={"title": "task", **fields})
        assert response.status_code == 201, response.text
        return response.json()

    async def list_all(self, url: str = "/api/tasks", /, **params: Any) -> list[dict[str, Any]]:
        """Every item the list at `url` (tasks by default) returns for `params`, following next_cursor to
        the end."""
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_PAGES):
            page = await self.get(url, params={**params, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            items += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return items
        raise AssertionError(f"{url} paging did not end after {MAX_PAGES} pages")


@dataclass(frozen=True)
class Sql:
    """Direct access to the test database, to look behind the API and to arrange what it cannot."""

    pool: asyncpg.Pool

    async def counts(self, user_id: str) -> tuple[int, int]:
        """(tasks, task events) of a user."""
        row = await self.pool.fetchrow(
            "SELECT (SELECT count(*) FROM task WHERE user_id = $1) AS tasks,"
            " (SELECT count(*) FROM task_event WHERE user_id = $1) AS events",
            user_id,
        )
        assert row is not None
        return row["tasks"], row["events"]

    async def events(self, task_id: str) -> list[asyncpg.Record]:
        """The event rows of a task, in commit order, each saying whether the outbox still lists it."""
        return await self.pool.fetch(
            "SELECT e.*, o.sequence IS NOT NULL AS unpublished"
            " FROM task_event e LEFT JOIN outbox o USING (sequence) WHERE e.subject = $1 ORDER BY e.sequence",
            task_id,
        )

    async def task_row(self, task_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT * FROM task WHERE id = $1", uuid.UUID(task_id))

    async def writers(self, task_id: str) -> tuple[int, int]:
        """The transaction ids that last wrote the task row and its newest outbox row (`xmin`)."""
        task = await self.pool.fetchval(
            "SELECT xmin::text::bigint FROM task WHERE id = $1", uuid.UUID(task_id)
        )
        event = await self.pool.fetchval(
            "SELECT xmin::text::bigint FROM task_event WHERE subject = $1 ORDER BY sequence DESC LIMIT 1",
            task_id,
        )
        return task, event

    async def delete_series_and_tasks(self, user_ids: list[str]) -> None:
        """Delete these users' recurring tasks and tasks, so no later materializer tick or reminder scan
        finds them."""
        await self.pool.execute("DELETE FROM recurring_task WHERE user_id = ANY($1)", user_ids)
        await self.pool.execute("DELETE FROM task WHERE user_id = ANY($1)", user_ids)


async def _json_codec(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(database_url: str) -> Sql:
    return Sql(await asyncpg.create_pool(database_url, min_size=1, max_size=4, init=_json_codec))


def b64(data: Any) -> str:
    """`data` as JSON in unpadded base64url, the encoding of a list cursor: to forge one."""
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with `status`; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body
