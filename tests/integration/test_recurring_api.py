"""The recurring-task functions over HTTP: their real ASGI apps in process (routed by the catalog like the
gateway), then each as its own functions-framework process. Status codes, ETags, If-Match, validation
problems with field names, user isolation, pagination, next_occurrences, and the cron and event entries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from sqlalchemy import select
from taskapi import Api, Sql, assert_problem, b64

from todo_backend import catalog
from todo_backend.bootstrap import unit_of_work
from todo_backend.db import get_sessionmaker
from todo_backend.models import RecurringTaskCreate, TaskEvent
from todo_backend.recurrence import Schedule
from todo_backend.recurring import CreateRecurringTask, create_recurring_task
from todo_backend.stored import to_cloudevent_json
from todo_backend.tasks import CompleteTask, complete_task

SERIES = "/api/recurring-tasks"
RECURRING_FUNCTIONS = tuple(
    fn
    for fn in catalog.FUNCTIONS
    if any(r.path.startswith(SERIES) for r in fn.routes)
    or fn.name in {"materialize-recurrences", "schedule-next-occurrence"}
)
CRON = "materialize-recurrences"
CONSUMER = "schedule-next-occurrence"


def utc(text: str) -> str:
    """An instant as the API renders it."""
    return (
        datetime.fromisoformat(text).astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture
async def users(
    function_clients: dict[str, httpx.AsyncClient], jwt_secret: str, sql: Sql
) -> AsyncIterator[Callable[[], Api]]:
    """New users over the functions' in-process apps; their rows are deleted afterwards."""
    made: list[str] = []

    def new() -> Api:
        made.append(f"recurring-{uuid.uuid4()}")
        return Api(function_clients, jwt_secret, made[-1])

    yield new
    await sql.delete_series_and_tasks(made)


@pytest.fixture
def alice(users: Callable[[], Api]) -> Api:
    return users()


@pytest.fixture
def bob(users: Callable[[], Api]) -> Api:
    return users()


async def create(api: Api, **fields: Any) -> dict[str, Any]:
    response = await api.post(SERIES, json={"title": "water the plants", "schedule": "0 9 * * *", **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def occurrences_of(api: Api, series: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in await api.list_all() if t["recurring_task_id"] == series["id"]]


# --- create, get, next_occurrences ------------------------------------------------------------------


async def test_creating_a_series_answers_201_with_location_etag_and_its_first_occurrence(alice: Api) -> None:
    response = await alice.post(
        SERIES,
        json={
            "title": " Stand-up ",
            "schedule": "0  9 * * 1-5",
            "tags": ["Work"],
            "remind_before_minutes": 10,
        },
    )
    assert response.status_code == 201, response.text
    series = response.json()
    assert response.headers["location"] == f"{SERIES}/{series['id']}"
    assert response.headers["etag"] == '"1"'
    assert {k: series[k] for k in ("title", "schedule", "tags", "timezone", "anchor", "paused")} == {
        "title": "Stand-up",
        "schedule": "0 9 * * 1-5",
        "tags": ["work"],
        "timezone": "UTC",
        "anchor": "schedule",
        "paused": False,
    }
    assert (series["until"], series["max_occurrences"], series["version"]) == (None, None, 1)
    assert (series["occurrences_created"], series["occurrences_skipped"]) == (1, 0)

    schedule = Schedule.parse("0 9 * * 1-5")
    starts_at = datetime.fromisoformat(series["starts_at"])
    assert abs(starts_at - datetime.now(UTC)) < timedelta(minutes=1)  # defaults to now
    first = schedule.next_after(starts_at)
    [occurrence] = await occurrences_of(alice, series)
    assert occurrence["occurrence_at"] == occurrence["due_date"] == utc(first.isoformat())
    assert (occurrence["title"], occurrence["tags"], occurrence["remind_before_minutes"]) == (
        "Stand-up",
        ["work"],
        10,
    )
    assert series["next_occurrences"][0] == occurrence["occurrence_at"]
    assert len(series["next_occurrences"]) == 5

    fetched = await alice.get(f"{SERIES}/{series['id']}")
    assert (fetched.status_code, fetched.headers["etag"]) == (200, '"1"')
    assert fetched.json() == series


async def test_next_occurrences_are_five_utc_instants_after_the_start_across_daylight_saving(
    alice: Api,
) -> None:
    series = await create(
        alice, schedule="30 2 * * *", timezone="America/New_York", starts_at="2031-03-07T00:00:00-05:00"
    )
    # 2031-03-09 02:30 does not exist in New York: that day's occurrence is at 03:00 EDT.
    assert series["next_occurrences"] == [
        "2031-03-07T07:30:00.000000Z",
        "2031-03-08T07:30:00.000000Z",
        "2031-03-09T07:00:00.000000Z",
        "2031-03-10T06:30:00.000000Z",
        "2031-03-11T06:30:00.000000Z",
    ]
    assert [o["occurrence_at"] for o in await occurrences_of(alice, series)] == [
        series["next_occurrences"][0]
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"until": "2031-01-03T09:00:00Z"}, ["2031-01-01", "2031-01-02", "2031-01-03"]),
        ({"max_occurrences": 2}, ["2031-01-01", "2031-01-02"]),
        ({"until": "2031-01-05T00:00:00Z", "max_occurrences": 2}, ["2031-01-01", "2031-01-02"]),
        ({"paused": True}, []),
    ],
    ids=["until", "max_occurrences", "both", "paused"],
)
async def test_next_occurrences_stop_where_the_series_ends_and_are_empty_while_paused(
    alice: Api, fields: dict[str, Any], expected: list[str]
) -> None:
    series = await create(alice, starts_at="2031-01-01T00:00:00Z", **fields)
    assert series["next_occurrences"] == [f"{day}T09:00:00.000000Z" for day in expected]
    assert (await alice.get(f"{SERIES}/{series['id']}")).json()["next_occurrences"] == series[
        "next_occurrences"
    ]


async def test_a_series_created_paused_has_no_occurrence_until_it_is_resumed(alice: Api) -> None:
    series = await create(alice, paused=True, starts_at="2031-01-01T00:00:00Z")
    assert (series["occurrences_created"], await occurrences_of(alice, series)) == (0, [])
    resumed = await alice.patch(f"{SERIES}/{series['id']}", json={"paused": False})
    assert resumed.json()["occurrences_created"] == 1
    assert [o["due_date"] for o in await occurrences_of(alice, series)] == ["2031-01-01T09:00:00.000000Z"]


# --- validation -------------------------------------------------------------------------------------

BASE = {"title": "t", "schedule": "0 9 * * *"}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({**BASE, "schedule": "0 0 9 * * *"}, {"schedule"}),  # seconds
        ({**BASE, "schedule": "@every 5m"}, {"schedule"}),
        ({**BASE, "schedule": "@reboot"}, {"schedule"}),
        ({**BASE, "schedule": "0 9 30 2 *"}, {"schedule"}),  # never fires
        ({**BASE, "schedule": ""}, {"schedule"}),
        ({"title": "t"}, {"schedule"}),
        ({"schedule": "0 9 * * *"}, {"title"}),
        ({**BASE, "timezone": "Mars/Olympus_Mons"}, {"timezone"}),
        ({**BASE, "timezone": "localtime"}, {"timezone"}),  # whatever the host is set to
        ({**BASE, "schedule": "* 2 8-14 3 */7", "timezone": "America/New_York"}, {"schedule"}),  # gap only
        ({**BASE, "schedule": "5-1 * * * *"}, {"schedule"}),  # backwards
        ({**BASE, "paused": 1}, {"paused"}),
        ({**BASE, "max_occurrences": True}, {"max_occurrences"}),
        ({**BASE, "anchor": "sometimes"}, {"anchor"}),
        ({**BASE, "starts_at": "2031-01-01T00:00:00"}, {"starts_at"}),  # no offset
        ({**BASE, "max_occurrences": 0}, {"max_occurrences"}),
        ({**BASE, "remind_before_minutes": -1}, {"remind_before_minutes"}),
        ({**BASE, "priority": "urgent", "tags": ["x" * 51]}, {"priority", "tags"}),
        ({**BASE, "starts_at": "2031-01-02T00:00:00Z", "until": "2031-01-01T00:00:00Z"}, {"until"}),
        ({**BASE, "next_occurrences": []}, {"next_occurrences"}),  # read-only
        ({**BASE, "occurrences_created": 5}, {"occurrences_created"}),
        ({**BASE, "title": "nul \u0000"}, {"title"}),
        ({**BASE, "description": "nul \u0000", "tags": ["nul\u0000"]}, {"description", "tags"}),
    ],
)
async def test_an_invalid_series_is_refused_with_422_naming_the_fields(
    alice: Api, sql: Sql, body: dict[str, Any], fields: set[str]
) -> None:
    problem = assert_problem(await alice.post(SERIES, json=body), 422)
    assert {e["field"] for e in problem["errors"]} == fields
    assert (
        await sql.pool.fetchval("SELECT count(*) FROM recurring_task WHERE user_id = $1", alice.user_id) == 0
    )


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"schedule": None}, {"schedule"}),
        ({"schedule": "*/5 * * * * *"}, {"schedule"}),
        ({"timezone": "Nowhere/Land"}, {"timezone"}),
        ({"paused": None}, {"paused"}),
        ({"title": "  "}, {"title"}),
        ({"until": "2000-01-01T00:00:00Z"}, {"until"}),  # before the series' start
        ({"timezone": "America/New_York", "schedule": "* 2 8-14 3 */7"}, {"schedule"}),
    ],
)
async def test_an_invalid_patch_is_refused_with_422_and_changes_nothing(
    alice: Api, body: dict[str, Any], fields: set[str]
) -> None:
    series = await create(alice)
    problem = assert_problem(await alice.patch(f"{SERIES}/{series['id']}", json=body), 422)
    assert {e["field"] for e in problem["errors"]} == fields
    assert (await alice.get(f"{SERIES}/{series['id']}")).json()["version"] == 1


async def test_a_body_that_is_not_a_json_object_is_refused(alice: Api) -> None:
    assert_problem(
        await alice.post(SERIES, content=b"[1]", headers={"Content-Type": "application/json"}), 422
    )
    assert_problem(await alice.post(SERIES, content=b"{", headers={"Content-Type": "application/json"}), 400)
    assert_problem(await alice.post(SERIES, content=b"{}", headers={"Content-Type": "text/plain"}), 415)


# --- update and delete ------------------------------------------------------------------------------


async def test_patch_merges_and_put_replaces(alice: Api) -> None:
    series = await create(
        alice, description="keep", tags=["a"], remind_before_minutes=5, starts_at="2031-01-01T00:00:00Z"
    )
    url = f"{SERIES}/{series['id']}"
    patched = await alice.patch(url, json={"priority": "high"}, headers={"If-Match": '"1"'})
    assert (patched.status_code, patched.headers["etag"]) == (200, '"2"')
    assert (patched.json()["priority"], patched.json()["description"], patched.json()["tags"]) == (
        "high",
        "keep",
        ["a"],
    )
    replaced = await alice.put(
        url, json={"title": "new", "schedule": "0 10 * * *", "starts_at": "2031-01-01T00:00:00Z"}
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert (body["title"], body["priority"], body["description"], body["tags"]) == ("new", "medium", "", [])
    assert (body["remind_before_minutes"], body["version"]) == (None, 3)
    assert body["next_occurrences"][0] == "2031-01-01T10:00:00.000000Z"
    # The upcoming occurrence moved with the schedule: still one.
    assert [o["due_date"] for o in await occurrences_of(alice, series)] == ["2031-01-01T10:00:00.000000Z"]


async def test_a_patch_that_changes_nothing_keeps_the_version(alice: Api) -> None:
    series = await create(alice)
    same = await alice.patch(f"{SERIES}/{series['id']}", json={"title": series["title"]})
    assert (same.status_code, same.json()["version"]) == (200, 1)


@pytest.mark.parametrize(
    ("method", "body"),
    [("PATCH", {"title": "stale"}), ("PUT", {**BASE, "title": "stale"}), ("DELETE", None)],
)
async def test_a_stale_if_match_is_412_and_changes_nothing(alice: Api, method: str, body: Any) -> None:
    series = await create(alice)
    url = f"{SERIES}/{series['id']}"
    assert (await alice.patch(url, json={"title": "v2"})).status_code == 200
    response = await alice.request(method, url, json=body, headers={"If-Match": '"1"'})
    assert_problem(response, 412)
    current = await alice.get(url)
    assert (current.json()["title"], current.headers["etag"]) == ("v2", '"2"')
    matched = await alice.request(method, url, json=body, headers={"If-Match": '"2"'})
    assert matched.status_code in (200, 204)


async def test_deleting_a_series_answers_204_and_keeps_its_occurrences(alice: Api) -> None:
    series = await create(alice)
    [occurrence] = await occurrences_of(alice, series)
    url = f"{SERIES}/{series['id']}"
    response = await alice.delete(url)
    assert (response.status_code, response.content) == (204, b"")
    assert_problem(await alice.get(url), 404)
    assert_problem(await alice.delete(url), 404)
    assert (await alice.get(f"/api/tasks/{occurrence['id']}")).json() == occurrence


# --- isolation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("GET", None),
        ("PATCH", {"title": "bob was here"}),
        ("PUT", {**BASE, "title": "bob was here"}),
        ("DELETE", None),
    ],
)
async def test_another_users_series_is_404_and_unchanged(
    alice: Api, bob: Api, sql: Sql, method: str, body: Any
) -> None:
    series = await create(alice)
    url = f"{SERIES}/{series['id']}"
    before = await sql.pool.fetchrow("SELECT * FROM recurring_task WHERE id = $1", uuid.UUID(series["id"]))
    response = await bob.request(method, url, json=body, headers={"If-Match": '"1"'})
    assert assert_problem(response, 404)["title"] == "Not Found"
    assert "bob was here" not in response.text
    after = await sql.pool.fetchrow("SELECT * FROM recurring_task WHERE id = $1", uuid.UUID(series["id"]))
    assert after == before
    assert await sql.counts(bob.user_id) == (0, 0)


async def test_a_list_shows_only_the_callers_series(alice: Api, bob: Api) -> None:
    mine = {(await create(alice))["id"] for _ in range(2)}
    await create(bob)
    listed = (await alice.get(SERIES)).json()
    assert {s["id"] for s in listed["items"]} == mine


@pytest.mark.parametrize("path", [f"{SERIES}/{uuid.uuid4()}", f"{SERIES}/not-a-uuid"])
async def test_an_unknown_series_is_404(alice: Api, path: str) -> None:
    assert_problem(await alice.get(path), 404)
    assert_problem(await alice.patch(path, json={"title": "x"}), 404)
    assert_problem(await alice.delete(path), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", SERIES),
        ("GET", SERIES),
        ("GET", SERIES + "/{id}"),
        ("PATCH", SERIES + "/{id}"),
        ("PUT", SERIES + "/{id}"),
        ("DELETE", SERIES + "/{id}"),
    ],
)
async def test_every_route_needs_a_token(alice: Api, method: str, path: str) -> None:
    response = await alice.request(method, path.format(id=uuid.uuid4()), json=BASE, token=None)
    assert_problem(response, 401)


# --- list -------------------------------------------------------------------------------------------


async def test_the_list_pages_in_creation_order(alice: Api) -> None:
    ids = [(await create(alice, title=f"series {i}"))["id"] for i in range(5)]
    first = (await alice.get(SERIES, params={"limit": 2})).json()
    second = (await alice.get(SERIES, params={"limit": 2, "cursor": first["next_cursor"]})).json()
    third = (await alice.get(SERIES, params={"limit": 2, "cursor": second["next_cursor"]})).json()
    assert [s["id"] for s in first["items"] + second["items"] + third["items"]] == ids
    assert third["next_cursor"] is None
    assert all(len(s["next_occurrences"]) == 5 for s in first["items"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "e30"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"sort": "title"}, "sort"),
    ],
)
async def test_bad_list_parameters_are_422(alice: Api, params: dict[str, Any], field: str) -> None:
    problem = assert_problem(await alice.get(SERIES, params=params), 422)
    assert [e["field"] for e in problem["errors"]] == [field]


# --- the cron and event entries ---------------------------------------------------------------------


async def a_series_due_now(user: str, **fields: Any) -> dict[str, Any]:
    """A series created five minutes ago with the clock at that time: its first occurrence has passed."""
    cmd = CreateRecurringTask(user, RecurringTaskCreate.model_validate({"title": "t", **fields}))
    then = datetime.now(UTC) - timedelta(minutes=5)
    return await create_recurring_task(cmd, unit_of_work("create-recurring-task"), now=then)


async def completion_of_first_occurrence(user: str, sql: Sql, series: dict[str, Any]) -> CloudEvent:
    task_id = await sql.pool.fetchval(
        "SELECT id FROM task WHERE recurring_task_id = $1", uuid.UUID(series["id"])
    )
    await complete_task(CompleteTask(user, task_id), unit_of_work("complete-task"))
    async with get_sessionmaker()() as session:
        stored = (
            await session.execute(
                select(TaskEvent).where(
                    TaskEvent.subject == str(task_id), TaskEvent.type == "dev.todo.task.completed"
                )
            )
        ).scalar_one()
    attributes = to_cloudevent_json(stored)
    return CloudEvent(attributes, attributes.pop("data"))


async def materializes(client: httpx.AsyncClient, user: str, sql: Sql) -> None:
    series = await a_series_due_now(user, schedule="* * * * *")
    response = await client.post("/")
    assert response.status_code == 200, response.text
    counts = response.json()
    assert set(counts) == {"due", "created", "skipped", "ended", "paused"}
    assert counts["created"] >= 1 and counts["skipped"] >= 4
    state = await sql.pool.fetchrow("SELECT * FROM recurring_task WHERE id = $1", uuid.UUID(series["id"]))
    assert state is not None and state["occurrences_created"] == 2
    assert state["next_occurrence_at"] > datetime.now(UTC) - timedelta(seconds=5)


async def schedules_the_next_occurrence(client: httpx.AsyncClient, user: str, sql: Sql) -> None:
    series = await a_series_due_now(user, schedule="*/5 * * * *", anchor="completion")
    event = await completion_of_first_occurrence(user, sql, series)
    headers, body = to_binary(event)
    for _ in range(2):  # the redelivery is acknowledged without a second successor
        response = await client.post("/", headers=headers, content=body)
        assert response.status_code < 300, response.text
    assert (
        await sql.pool.fetchval(
            "SELECT count(*) FROM task WHERE recurring_task_id = $1", uuid.UUID(series["id"])
        )
        == 2
    )
    forged = CloudEvent({**event.get_attributes(), "id": str(uuid.uuid4()), "userid": "mallory"}, event.data)
    headers, body = to_binary(forged)
    assert (await client.post("/", headers=headers, content=body)).status_code == 422


async def test_the_materializer_entry_needs_no_token_and_answers_counts(
    function_clients: dict[str, httpx.AsyncClient], users: Callable[[], Api], sql: Sql
) -> None:
    await materializes(function_clients[CRON], users().user_id, sql)


async def test_the_consumer_entry_creates_the_successor_once_and_refuses_a_forged_user(
    function_clients: dict[str, httpx.AsyncClient], users: Callable[[], Api], sql: Sql
) -> None:
    await schedules_the_next_occurrence(function_clients[CONSUMER], users().user_id, sql)


# --- each function as its own process ---------------------------------------------------------------


@pytest.fixture(scope="module")
async def processes(function_process: Callable[[str], str]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    names = [fn.name for fn in RECURRING_FUNCTIONS]
    urls = await asyncio.gather(*(asyncio.to_thread(function_process, name) for name in names))
    clients = {
        name: httpx.AsyncClient(base_url=url, timeout=10) for name, url in zip(names, urls, strict=True)
    }
    yield clients
    for client in clients.values():
        await client.aclose()


async def test_each_recurring_function_works_as_its_own_process(
    processes: dict[str, httpx.AsyncClient], users: Callable[[], Api], sql: Sql
) -> None:
    user = users()
    api = Api(processes, user.secret, user.user_id)
    created = await api.post(SERIES, json={**BASE, "starts_at": "2031-01-01T00:00:00Z"})
    assert (created.status_code, created.headers["location"]) == (201, f"{SERIES}/{created.json()['id']}")
    url = created.headers["location"]
    assert (await api.get(url)).json() == created.json()
    assert [s["id"] for s in (await api.get(SERIES)).json()["items"]] == [created.json()["id"]]
    patched = await api.patch(url, json={"paused": True}, headers={"If-Match": '"1"'})
    assert (patched.status_code, patched.json()["next_occurrences"]) == (200, [])
    replaced = await api.put(url, json={**BASE, "title": "replaced", "starts_at": "2031-01-01T00:00:00Z"})
    assert (replaced.json()["title"], replaced.json()["paused"], replaced.json()["version"]) == (
        "replaced",
        False,
        3,
    )
    assert (await api.delete(url, headers={"If-Match": '"3"'})).status_code == 204
    assert_problem(await api.get(url, token=None), 401)

    await materializes(processes[CRON], api.user_id, sql)
    await schedules_the_next_occurrence(processes[CONSUMER], api.user_id, sql)


def test_every_recurring_function_is_covered_here() -> None:
    assert {fn.name for fn in RECURRING_FUNCTIONS} == {
        "create-recurring-task",
        "list-recurring-tasks",
        "get-recurring-task",
        "update-recurring-task",
        "delete-recurring-task",
        "materialize-recurrences",
        "schedule-next-occurrence",
    }


# --- hostile input never yields a 500 ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"starts_at": "0001-01-01T00:30:00+01:00"},
        {"starts_at": "9999-12-31T23:00:00-02:00"},
        {"starts_at": "9999-12-31T22:00:00Z"},
        {"until": "9999-12-31T23:00:00-02:00"},
        {"until": "0001-01-01T00:30:00+01:00"},
        {"starts_at": "9500-01-01T00:00:00Z", "schedule": "0 9 29 2 *"},
        {"schedule": "0 9 29 2 1"},
    ],
    ids=[
        "start-year-0",
        "start-year-10000",
        "start-last-hours",
        "until-year-10000",
        "until-year-0",
        "start-far-future",
        "rare",
    ],
)
async def test_an_instant_at_the_edge_of_the_calendar_is_stored_or_refused_never_500(
    alice: Api, sql: Sql, fields: dict[str, Any]
) -> None:
    response = await alice.post(SERIES, json={**BASE, **fields})
    assert response.status_code in {201, 422}, response.text
    if response.status_code == 422:
        assert [e["field"] for e in response.json()["errors"]] == [next(iter(fields))]
        assert await sql.counts(alice.user_id) == (0, 0)
    else:
        url = response.headers["location"]
        assert (await alice.get(url)).json() == response.json()
        patched = await alice.patch(url, json=fields)
        assert patched.status_code == 200, patched.text


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        b64([1, 2]),
        b64({}),
        b64({"created_at": "yesterday", "id": str(uuid.uuid4())}),
        b64({"created_at": None, "id": 5}),
        b64({"created_at": "2030-01-01T00:00:00+00:00", "id": 5}),
        b64({"created_at": "2030-01-01T00:00:00+00:00", "id": "x"}),
        b64({"created_at": "2030-01-01T00:00:00", "id": str(uuid.uuid4())}),
        b64({"created_at": "0001-01-01T00:30:00+01:00", "id": str(uuid.uuid4())}),
        b64({"created_at": 5, "id": str(uuid.uuid4())}),
    ],
    ids=[
        "not-base64",
        "json-list",
        "keys-missing",
        "bad-datetime",
        "null-datetime-number-id",
        "id-a-number",
        "id-not-a-uuid",
        "naive-datetime",
        "year-0",
        "datetime-a-number",
    ],
)
async def test_a_forged_list_cursor_is_422_not_500(alice: Api, cursor: str) -> None:
    await create(alice)
    problem = assert_problem(await alice.get(SERIES, params={"cursor": cursor}), 422)
    assert [e["field"] for e in problem["errors"]] == ["cursor"]
