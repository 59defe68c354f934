"""Property-based API conformance (issue 8): schemathesis sends generated valid and invalid requests to
every documented operation, against the real function apps and PostgreSQL, with a valid token; no answer
may be a server error or disagree with the OpenAPI document (status code, content type, body schema)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from urllib.parse import unquote

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from taskapi import PROBLEM_JSON, load_apps, mint

from todo_backend import catalog, db, pg
from todo_backend.devstack.gateway import _no_route as no_route
from todo_backend.devstack.gateway import _raw_path as raw_path
from todo_backend.openapi import build_openapi

CHECKS = [
    not_a_server_error,
    negative_data_rejection,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 25  # per operation; each case is a request to the real app and PostgreSQL
RESULTS: Counter[tuple[str, str]] = Counter()  # (operation, "examples" | "failures")
STATUSES: Counter[int] = Counter()  # which answers the cases got: most must reach the handlers


def catalog_router(apps: dict[str, ASGIApp]) -> ASGIApp:
    """One ASGI app in front of the function apps, routing each request as the gateway does."""

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # schemathesis runs every app on its own event loop (a thread); the engine's connections
            # belong to that loop, so they are closed on it when the run ends.
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await db.get_engine().dispose()
            await pg.close_pool()
            await send({"type": "lifespan.shutdown.complete"})
            return
        # The gateway's own checks first: it refuses control characters and encoded separators in a
        # path, which functions-framework would answer with a plain-text 404.
        path = raw_path(Request(scope))
        if isinstance(path, Response):
            return await path(scope, receive, send)
        match = catalog.match_route(scope["method"], unquote(path))
        if match is None:
            return await no_route(scope["method"], unquote(path))(scope, receive, send)
        await apps[match[0].name](scope, receive, send)

    return route


@pytest.fixture(scope="module")
async def router(database_url: str) -> AsyncIterator[ASGIApp]:
    """Every routed function's app behind one router; figures for the run printed at the end."""
    # Connections made on pytest's loop cannot be used on schemathesis's: start from empty pools.
    await db.get_engine().dispose()
    await pg.close_pool()
    yield catalog_router(load_apps(fn for fn in catalog.FUNCTIONS if fn.routes))
    asgi.shutdown_lifespans()
    operations = sorted({op for op, _ in RESULTS})
    for op in operations:
        print(f"schemathesis {op}: {RESULTS[op, 'examples']} examples, {RESULTS[op, 'failures']} failures")
    total = sum(RESULTS[op, "examples"] for op in operations)
    failed = sum(RESULTS[op, "failures"] for op in operations)
    print(f"schemathesis total: {len(operations)} operations, {total} examples, {failed} failures")
    print("schemathesis statuses:", ", ".join(f"{code}: {n}" for code, n in sorted(STATUSES.items())))


# The answers that refuse invalid input: schemathesis's own list, and 413, which the document lists for a
# body too large for any field's limit, refused before it is parsed.
REJECTIONS = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
REJECTS = {"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}}
schema = schemathesis.openapi.from_dict(build_openapi(), config=SchemathesisConfig.from_dict(REJECTS))
USER = f"user-{uuid.uuid4()}"


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same cases on every run
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_bad_input_with_a_documented_4xx_never_a_5xx(
    case: schemathesis.Case, router: ASGIApp, jwt_secret: str
) -> None:
    label = case.operation.label
    RESULTS[label, "examples"] += 1
    # A case that leaves the token out tests the refusal; any other gets a valid one for its user.
    token = {"Authorization": f"Bearer {mint(jwt_secret, USER)}"} if "Authorization" in case.headers else {}
    response = case.call(app=router, headers=token)
    STATUSES[response.status_code] += 1
    try:
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400:
            assert response.headers["content-type"][0].split(";")[0] == PROBLEM_JSON, response.text
        if response.status_code == 422:
            errors = response.json().get("errors")
            assert errors and all(e["field"] for e in errors), response.text
    except BaseException:
        RESULTS[label, "failures"] += 1
        raise
