"""Bad requests get RFC 9457 problems with the right status, never change anything, never yield a 500."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from taskapi import Api, Sql, assert_problem, b64

TASK = "/api/tasks/{id}"
LIMIT = 64 * 1024


def every_route(task_id: str) -> list[tuple[str, str]]:
    return [
        ("POST", "/api/tasks"),
        ("GET", "/api/tasks"),
        ("GET", f"/api/tasks/{task_id}"),
        ("PATCH", f"/api/tasks/{task_id}"),
        ("PUT", f"/api/tasks/{task_id}"),
        ("DELETE", f"/api/tasks/{task_id}"),
        ("POST", f"/api/tasks/{task_id}/complete"),
        ("GET", f"/api/tasks/{task_id}/events"),
    ]


ROUTE_IDS = ["create", "list", "get", "patch", "put", "delete", "complete", "history"]


async def snapshot(api: Api, sql: Sql, task_id: str) -> tuple[tuple[int, int], dict[str, Any]]:
    """What a bad request must not change: the user's row counts and the task as stored."""
    row = await sql.task_row(task_id)
    assert row is not None
    return await sql.counts(api.user_id), dict(row)


# --- 401 -------------------------------------------------------------------------------------------


def bad_tokens(secret: str, user: str) -> dict[str, str | None]:
    now = int(time.time())
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    claims = (
        base64.urlsafe_b64encode(json.dumps({"sub": user, "exp": now + 300}).encode()).decode().rstrip("=")
    )
    return {
        "missing": None,
        "malformed": "definitely-not-a-jwt",
        "expired": jwt.encode({"sub": user, "exp": now - 10}, secret, algorithm="HS256"),
        "wrong-signature": jwt.encode({"sub": user, "exp": now + 300}, "x" * 64, algorithm="HS256"),
        "alg-none": f"{header}.{claims}.",
        "no-exp": jwt.encode({"sub": user}, secret, algorithm="HS256"),
        "no-sub": jwt.encode({"exp": now + 300}, secret, algorithm="HS256"),
        # Signed with our secret, but no user id PostgreSQL can store or index (json.dumps escapes
        # the surrogate as \ud800, as an attacker's JSON would).
        "sub-with-nul": jwt.encode({"sub": "a\x00b", "exp": now + 300}, secret, algorithm="HS256"),
        "sub-with-surrogate": jwt.encode({"sub": "a\ud800", "exp": now + 300}, secret, algorithm="HS256"),
        "sub-of-3000-chars": jwt.encode({"sub": "u" * 3000, "exp": now + 300}, secret, algorithm="HS256"),
    }


@pytest.mark.parametrize("route", range(8), ids=ROUTE_IDS)
@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "malformed",
        "expired",
        "wrong-signature",
        "alg-none",
        "no-exp",
        "no-sub",
        "sub-with-nul",
        "sub-with-surrogate",
        "sub-of-3000-chars",
    ],
)
async def test_every_route_refuses_a_bad_token_with_401_and_changes_nothing(
    alice: Api, sql: Sql, jwt_secret: str, route: int, case: str
) -> None:
    task = await alice.create(title="mine")
    before = await snapshot(alice, sql, task["id"])
    method, url = every_route(task["id"])[route]
    token = bad_tokens(jwt_secret, alice.user_id)[case]
    body = {"title": "changed"} if method in {"POST", "PATCH", "PUT"} else None
    response = await alice.request(method, url, token=token, json=body)
    problem = assert_problem(response, 401)
    assert problem["title"] == "Unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert await snapshot(alice, sql, task["id"]) == before


@pytest.mark.parametrize("header", ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Token abc"])
async def test_a_non_bearer_authorization_header_is_401(alice: Api, header: str) -> None:
    response = await alice.get("/api/tasks", token=None, headers={"Authorization": header})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


# --- 400, 415, 413 ---------------------------------------------------------------------------------


@pytest.fixture
async def existing(alice: Api) -> AsyncIterator[dict[str, Any]]:
    yield await alice.create(title="untouched", description="as created", tags=["keep"])


WRITES = [("POST", "/api/tasks"), ("PATCH", TASK), ("PUT", TASK)]
WRITE_IDS = ["create", "patch", "put"]


@pytest.mark.parametrize(("method", "url"), WRITES, ids=WRITE_IDS)
@pytest.mark.parametrize(
    "raw", [b'{"title": "x"', b"{title: 'x'}", b"", b"\xff\xfe{}", b'{"title": "x"} trailing'], ids=str
)
async def test_malformed_json_is_400_and_changes_nothing(
    alice: Api, sql: Sql, existing: dict[str, Any], method: str, url: str, raw: bytes
) -> None:
    before = await snapshot(alice, sql, existing["id"])
    response = await alice.request(
        method, url.format(id=existing["id"]), content=raw, headers={"Content-Type": "application/json"}
    )
    assert assert_problem(response, 400)["title"] == "Bad Request"
    assert await snapshot(alice, sql, existing["id"]) == before


@pytest.mark.parametrize(("method", "url"), WRITES, ids=WRITE_IDS)
@pytest.mark.parametrize(
    "ctype", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
async def test_a_body_that_is_not_json_is_415_and_changes_nothing(
    alice: Api, sql: Sql, existing: dict[str, Any], method: str, url: str, ctype: str | None
) -> None:
    before = await snapshot(alice, sql, existing["id"])
    headers = {"Content-Type": ctype} if ctype else {}
    response = await alice.request(
        method, url.format(id=existing["id"]), content=b'{"title": "valid json"}', headers=headers
    )
    assert assert_problem(response, 415)["title"] == "Unsupported Media Type"
    assert await snapshot(alice, sql, existing["id"]) == before


async def test_json_with_a_charset_parameter_is_accepted(alice: Api) -> None:
    response = await alice.post(
        "/api/tasks",
        content=b'{"title": "charset"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201
    assert response.json()["title"] == "charset"


def padded(size: int) -> bytes:
    """A valid JSON object of exactly `size` bytes (whitespace padding, so only the size is wrong)."""
    start = b'{"title": "big"'
    return start + b" " * (size - len(start) - 1) + b"}"


@pytest.mark.parametrize(("method", "url"), WRITES, ids=WRITE_IDS)
async def test_a_body_over_64_kib_is_413_and_changes_nothing(
    alice: Api, sql: Sql, existing: dict[str, Any], method: str, url: str
) -> None:
    before = await snapshot(alice, sql, existing["id"])
    response = await alice.request(
        method,
        url.format(id=existing["id"]),
        content=padded(LIMIT + 1),
        headers={"Content-Type": "application/json"},
    )
    assert assert_problem(response, 413)["title"] == "Content Too Large"
    assert await snapshot(alice, sql, existing["id"]) == before


async def test_a_chunked_body_over_64_kib_without_a_content_length_is_413(alice: Api, sql: Sql) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        body = padded(LIMIT + 10)
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    before = await sql.counts(alice.user_id)
    response = await alice.post("/api/tasks", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)
    assert await sql.counts(alice.user_id) == before


async def test_a_body_of_exactly_64_kib_is_accepted(alice: Api) -> None:
    response = await alice.post(
        "/api/tasks", content=padded(LIMIT), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "big"


# --- 422 -------------------------------------------------------------------------------------------

INVALID_BODIES: list[tuple[dict[str, Any] | list[Any], set[str]]] = [
    ({"title": "   "}, {"title"}),
    ({"title": "t" * 501}, {"title"}),
    ({"title": "ok", "description": "d" * 10_001}, {"description"}),
    ({"title": "ok", "tags": [f"t{i}" for i in range(21)]}, {"tags"}),
    ({"title": "ok", "tags": ["x" * 51]}, {"tags"}),
    ({"title": "ok", "tags": [""]}, {"tags"}),
    ({"title": "ok", "due_date": "2030-01-01T09:00:00"}, {"due_date"}),
    ({"title": "ok", "due_date": "tomorrow"}, {"due_date"}),
    ({"title": "ok", "priority": "urgent"}, {"priority"}),
    ({"title": "ok", "remind_before_minutes": -5}, {"remind_before_minutes"}),
    ({"title": "ok", "remind_before_minutes": True}, {"remind_before_minutes"}),
    ({"title": "ok", "due_date": 1_900_000_000}, {"due_date"}),
    ({"title": "ok", "due_date": "1900000000"}, {"due_date"}),
    ({"title": "ok", "completed": 1}, {"completed"}),
    ({"title": "ok", "completed": "maybe"}, {"completed"}),
    ({"title": "ok", "owner": "bob"}, {"owner"}),
    ({"title": "ok", "id": str(uuid.uuid4()), "version": 9}, {"id", "version"}),
    ({"title": 5}, {"title"}),
    (["title"], {"body"}),
]
INVALID_IDS = [
    "blank-title",
    "long-title",
    "long-description",
    "21-tags",
    "long-tag",
    "empty-tag",
    "naive-due-date",
    "not-a-date",
    "bad-priority",
    "negative-reminder",
    "reminder-true",
    "unix-due-date",
    "unix-string-due-date",
    "completed-one",
    "not-a-bool",
    "unknown-field",
    "read-only-fields",
    "title-not-a-string",
    "not-an-object",
]


@pytest.mark.parametrize(("body", "fields"), INVALID_BODIES, ids=INVALID_IDS)
@pytest.mark.parametrize(("method", "url"), WRITES, ids=WRITE_IDS)
async def test_invalid_fields_are_422_naming_each_field_and_change_nothing(
    alice: Api,
    sql: Sql,
    existing: dict[str, Any],
    method: str,
    url: str,
    body: dict[str, Any] | list[Any],
    fields: set[str],
) -> None:
    before = await snapshot(alice, sql, existing["id"])
    response = await alice.request(method, url.format(id=existing["id"]), json=body)
    problem = assert_problem(response, 422)
    assert problem["type"] == "/problems/validation-error"
    assert {e["field"] for e in problem["errors"]} == fields
    assert all(isinstance(e["message"], str) and e["message"] for e in problem["errors"])
    assert await snapshot(alice, sql, existing["id"]) == before


@pytest.mark.parametrize("field", ["title", "description", "priority", "tags", "completed"])
async def test_patch_null_for_a_non_nullable_field_is_422(
    alice: Api, sql: Sql, existing: dict[str, Any], field: str
) -> None:
    before = await snapshot(alice, sql, existing["id"])
    problem = assert_problem(await alice.patch(f"/api/tasks/{existing['id']}", json={field: None}), 422)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert await snapshot(alice, sql, existing["id"]) == before


async def test_put_without_a_title_is_422_and_changes_nothing(
    alice: Api, sql: Sql, existing: dict[str, Any]
) -> None:
    before = await snapshot(alice, sql, existing["id"])
    problem = assert_problem(await alice.put(f"/api/tasks/{existing['id']}", json={"description": "x"}), 422)
    assert [e["field"] for e in problem["errors"]] == ["title"]
    assert await snapshot(alice, sql, existing["id"]) == before


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "ten"},
        {"status": "done"},
        {"priority": "urgent"},
        {"sort": "updated_at"},
        {"due_before": "2030-01-01T00:00:00"},
        {"due_after": "soon"},
        {"overdue": "perhaps"},
        {"q": ""},
        {"colour": "red"},
    ],
    ids=lambda q: "&".join(f"{k}={v}" for k, v in q.items()),
)
async def test_invalid_list_parameters_are_422_naming_the_parameter(
    alice: Api, query: dict[str, str]
) -> None:
    problem = assert_problem(await alice.get("/api/tasks", params=query), 422)
    # A repeatable parameter's error names the item too (priority.0).
    assert {e["field"].split(".")[0] for e in problem["errors"]} == set(query)


async def test_an_idempotency_key_longer_than_255_characters_is_422(alice: Api, sql: Sql) -> None:
    response = await alice.post("/api/tasks", json={"title": "x"}, headers={"Idempotency-Key": "k" * 256})
    assert [e["field"] for e in assert_problem(response, 422)["errors"]] == ["Idempotency-Key"]
    assert await sql.counts(alice.user_id) == (0, 0)


# --- 404 -------------------------------------------------------------------------------------------

ID_ROUTES = [("GET", TASK), ("PATCH", TASK), ("PUT", TASK), ("DELETE", TASK)]
ID_ROUTES += [("POST", TASK + "/complete"), ("GET", TASK + "/events")]
ID_ROUTE_IDS = ["get", "patch", "put", "delete", "complete", "history"]


@pytest.mark.parametrize(("method", "url"), ID_ROUTES, ids=ID_ROUTE_IDS)
@pytest.mark.parametrize(
    "task_id", [str(uuid.uuid4()), "not-a-uuid", "123", "%20"], ids=["unknown", "word", "number", "blank"]
)
async def test_an_unknown_or_malformed_task_id_is_404(
    alice: Api, sql: Sql, existing: dict[str, Any], method: str, url: str, task_id: str
) -> None:
    before = await snapshot(alice, sql, existing["id"])
    body = {"title": "x"} if method in {"PATCH", "PUT"} else None
    response = await alice.request(method, url.format(id=task_id), json=body)
    assert assert_problem(response, 404)["title"] == "Not Found"
    assert await snapshot(alice, sql, existing["id"]) == before


# --- hostile input never yields a 500 --------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"title": "nul \u0000 byte"},
        {"title": "ok", "description": "nul \u0000 byte"},
        {"title": "ok", "tags": ["nul\u0000tag"]},
    ],
    ids=["title", "description", "tag"],
)
async def test_a_nul_character_in_a_text_field_is_422_not_500(
    alice: Api, sql: Sql, body: dict[str, Any]
) -> None:
    # PostgreSQL text cannot hold U+0000: the API has to refuse it rather than fail on insert.
    response = await alice.post("/api/tasks", json=body)
    assert_problem(response, 422)
    assert await sql.counts(alice.user_id) == (0, 0)


# Every route that takes a body, with the fields it requires besides the one under test.
HOOK = {"url": '"http://127.0.0.1:9/hook"', "event_types": '["dev.todo.task.created"]'}
BODY_ROUTES = {
    "create": ("POST", "/api/tasks", {"title": '"ok"'}),
    "patch": ("PATCH", TASK, {}),
    "put": ("PUT", TASK, {"title": '"ok"'}),
    "create-recurring": ("POST", "/api/recurring-tasks", {"title": '"ok"', "schedule": '"0 9 * * *"'}),
    "patch-recurring": ("PATCH", "/api/recurring-tasks/{series}", {}),
    "create-webhook": ("POST", "/api/webhooks", HOOK),
}
# Raw JSON: a "\ud800" escape decodes to a lone surrogate, which UTF-8 (and so asyncpg) cannot encode.
SURROGATES = {
    "title-high": ("title", '"lone \\ud800 surrogate"'),
    "title-low": ("title", '"\\udfff"'),
    "description": ("description", '"lone \\udbff"'),
    "tag": ("tags", '["ok", "lone\\ud800"]'),
}
SURROGATE_CASES = {
    f"{route}-{case}": (*BODY_ROUTES[route], *SURROGATES[case])
    for route in BODY_ROUTES
    for case in SURROGATES
    if route != "create-webhook"
}
SURROGATE_CASES["create-webhook-event-type"] = (*BODY_ROUTES["create-webhook"], "event_types", '["x\\ud800"]')
SURROGATE_CASES["create-webhook-secret"] = (*BODY_ROUTES["create-webhook"], "secret", '"\\ud800" ')


@pytest.mark.parametrize(
    ("method", "url", "required", "field", "raw"), SURROGATE_CASES.values(), ids=SURROGATE_CASES.keys()
)
async def test_a_lone_surrogate_in_a_text_field_is_422_naming_it_and_changes_nothing(
    alice: Api,
    sql: Sql,
    existing: dict[str, Any],
    method: str,
    url: str,
    required: dict[str, str],
    field: str,
    raw: str,
) -> None:
    series = await alice.post("/api/recurring-tasks", json={"title": "s", "schedule": "0 9 * * *"})
    assert series.status_code == 201, series.text
    try:
        before = await snapshot(alice, sql, existing["id"])
        body = "{" + ",".join(f'"{k}": {v}' for k, v in {**required, field: raw}.items()) + "}"
        response = await alice.request(
            method,
            url.format(id=existing["id"], series=series.json()["id"]),
            content=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert [e["field"] for e in assert_problem(response, 422)["errors"]] == [field]
        assert await snapshot(alice, sql, existing["id"]) == before
    finally:
        # A series of today's date: the recurring-engine tests' ticks (in 2091) would claim it.
        await sql.delete_series_and_tasks([alice.user_id])


@pytest.mark.parametrize(
    "body",
    [
        {"due_date": "0001-01-01T00:00:00Z"},
        {"due_date": "0001-01-01T00:30:00+01:00", "remind_before_minutes": 0},
        {"due_date": "9999-12-31T23:00:00-02:00", "remind_before_minutes": 0},
    ],
    ids=["year-1-reminder-before-year-1", "year-0-in-utc", "year-10000-in-utc"],
)
async def test_a_due_date_at_the_edge_of_the_calendar_is_stored_or_refused_never_500(
    alice: Api, sql: Sql, body: dict[str, Any]
) -> None:
    response = await alice.post("/api/tasks", json={"title": "edge", **body})
    assert response.status_code in {201, 422}, response.text
    if response.status_code == 422:
        assert [e["field"] for e in response.json()["errors"]] == ["due_date"]
        assert await sql.counts(alice.user_id) == (0, 0)
    else:
        fetched = await alice.get(f"/api/tasks/{response.json()['id']}")
        assert fetched.json()["due_date"] == response.json()["due_date"]
        assert fetched.json()["due_date"].endswith("Z")


async def test_deeply_nested_json_is_a_client_error_not_500(alice: Api, sql: Sql) -> None:
    body = b'{"title": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    assert len(body) < LIMIT
    response = await alice.post("/api/tasks", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code in {400, 422}, response.text
    assert await sql.counts(alice.user_id) == (0, 0)


@pytest.mark.parametrize(
    "query",
    [{"q": "nul\u0000byte"}, {"tag": "nul\u0000tag"}, {"due_before": "0001-01-01T00:00:00+01:00"}],
    ids=["q-with-nul", "tag-with-nul", "due-before-year-0"],
)
async def test_hostile_list_parameters_match_nothing_or_are_422_never_500(
    alice: Api, query: dict[str, str]
) -> None:
    await alice.create(title="nul byte", tags=["nul"], due_date="2030-01-01T00:00:00Z")
    response = await alice.get("/api/tasks", params=query)
    assert response.status_code in {200, 422}, response.text
    if response.status_code == 200:
        assert response.json() == {"items": [], "next_cursor": None}
    else:
        # A repeated parameter's item is named with its index (tag.0).
        assert {e["field"].split(".")[0] for e in response.json()["errors"]} == set(query)


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        ("created_at", "%%%"),
        ("created_at", b64([1, 2])),
        ("created_at", b64({"sort": "created_at"})),
        ("created_at", b64({"sort": "created_at", "created_at": "yesterday", "id": str(uuid.uuid4())})),
        ("created_at", b64({"sort": "created_at", "created_at": None, "id": 5})),
        ("created_at", b64({"sort": "created_at", "created_at": "2030-01-01T00:00:00+00:00", "id": "x"})),
        ("title", b64({"sort": "title", "title": 5, "id": str(uuid.uuid4())})),
        ("priority", b64({"sort": "priority", "priority": "urgent", "id": str(uuid.uuid4())})),
        ("due_date", b64({"sort": "due_date", "no_due": "x", "due_date": None, "id": str(uuid.uuid4())})),
    ],
    ids=[
        "not-base64",
        "json-list",
        "keys-missing",
        "bad-datetime",
        "id-a-number",
        "id-not-a-uuid",
        "title-a-number",
        "unknown-priority",
        "no-due-a-string",
    ],
)
async def test_a_forged_list_cursor_is_422_not_500(alice: Api, sort: str, cursor: str) -> None:
    await alice.create(title="something to page over")
    problem = assert_problem(await alice.get("/api/tasks", params={"sort": sort, "cursor": cursor}), 422)
    assert [e["field"] for e in problem["errors"]] == ["cursor"]


@pytest.mark.parametrize(
    "cursor",
    ["%%%", b64({"after": "x"}), b64({"before": 1}), b64({"after": 10**30})],
    ids=["not-base64", "after-a-string", "after-missing", "after-beyond-bigint"],
)
async def test_a_forged_history_cursor_is_422_not_500(alice: Api, cursor: str) -> None:
    task = await alice.create()
    problem = assert_problem(
        await alice.get(f"/api/tasks/{task['id']}/events", params={"cursor": cursor}), 422
    )
    assert [e["field"] for e in problem["errors"]] == ["cursor"]


async def test_a_problem_is_json_even_for_a_client_that_accepts_anything(alice: Api) -> None:
    response = await alice.get(f"/api/tasks/{uuid.uuid4()}", headers={"Accept": "text/html"})
    assert_problem(response, 404)
    assert isinstance(response, httpx.Response)
