"""Webhooks end to end in process: the subscription routes, the deliver-webhooks consumer fed binary- and
structured-mode CloudEvents, and the retry cron, all through their real ASGI apps over real PostgreSQL,
POSTing to real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from detached import background_deliveries_done
from taskapi import Api, Sql, assert_problem

from todo_backend import catalog
from todo_backend.db import get_engine, get_sessionmaker
from todo_backend.devstack.runner import free_port
from todo_backend.events import task_json
from todo_backend.models import Task, TaskEvent
from todo_backend.settings import get_settings
from todo_backend.stored import to_cloudevent_json
from todo_backend.webhooks import delivery as webhook_delivery

WEBHOOK_FUNCTIONS = tuple(fn for fn in catalog.FUNCTIONS if "webhook" in fn.name)
CREATED = "dev.todo.task.created"
COMPLETED = "dev.todo.task.completed"


# --- receivers: real HTTP endpoints -------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering: a slow (or, long enough, hung) receiver


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic()


class Receiver:
    """An HTTP/1.1 endpoint on 127.0.0.1 (asyncio.start_server) answering POSTs with the scripted replies
    in turn (the last one repeats), recording every request it was sent."""

    def __init__(self, *replies: Reply, port: int = 0) -> None:
        self.replies = list(replies) or [Reply()]
        self.port = port
        self.received: list[Received] = []
        self.in_flight = 0  # requests received and not yet answered
        self.peak = 0  # the most ever in flight at once
        self._arrivals: asyncio.Queue[Received] = asyncio.Queue()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._closing = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        self._closing.set()  # a delayed reply ends now, unanswered
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def next(self) -> Received:
        """The next request to arrive (within 5 s)."""
        async with asyncio.timeout(5):
            return await self._arrivals.get()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, path, _ = head[0].split(" ", 2)
            headers = {}
            for line in head[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = Received(method, path, headers, body, time.monotonic())
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.received.append(request)
            self._arrivals.put_nowait(request)
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), reply.delay)
            self.in_flight -= 1
            if self._closing.is_set():
                return
            extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
            writer.write(
                f"HTTP/1.1 {reply.status} X\r\nContent-Length: {len(reply.body)}\r\n{extra}"
                "Connection: close\r\n\r\n".encode()
                + reply.body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client hung up: it reads at most an excerpt, and times out
        finally:
            self._handlers.discard(task)
            writer.close()


def verify_signature(request: Received, secret: str) -> None:
    """As a receiver would: recompute the HMAC over the exact bytes received."""
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-todo-signature"], expected)


# --- users and the functions' in-process apps ---------------------------------------------------------


@pytest.fixture
async def new_user(
    function_clients: dict[str, httpx.AsyncClient], jwt_secret: str, sql: Sql
) -> AsyncIterator[Callable[[], Api]]:
    """A user no other test has, routed by the catalog like the gateway; their webhooks (and so their
    deliveries) are deleted afterwards, so no retry tick of a later test meets them."""
    users: list[Api] = []

    def make() -> Api:
        users.append(Api(function_clients, jwt_secret, f"user-{uuid.uuid4()}"))
        return users[-1]

    yield make
    await background_deliveries_done()
    await sql.pool.execute("DELETE FROM webhook WHERE user_id = ANY($1::text[])", [u.user_id for u in users])


@pytest.fixture
def deliver(function_clients: dict[str, httpx.AsyncClient]) -> httpx.AsyncClient:
    return function_clients["deliver-webhooks"]


@pytest.fixture
def retry(function_clients: dict[str, httpx.AsyncClient]) -> Callable[[], Any]:
    async def tick() -> dict[str, int]:
        response = await function_clients["retry-webhook-deliveries"].post("/")
        assert response.status_code == 200, response.text
        return response.json()

    return tick


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The webhook rules of a production deployment (https, public addresses only) for this test."""
    # On the process's one Settings, so both halves see it: creating checks the URL (through the unit
    # of work's settings), attempting checks it again (delivery reads them itself).
    monkeypatch.setattr(get_settings(), "todo_env", "production")
    yield


async def subscribe(user: Api, url: str, *types: str, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url, "event_types": list(types or (CREATED,))}
    if secret is not None:
        body["secret"] = secret
    response = await user.post("/api/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def task_event(user: Api, type_: str = CREATED, task_id: str | None = None, **attrs: Any) -> CloudEvent:
    task_id = task_id or str(uuid.uuid4())
    attributes = {
        "id": str(uuid.uuid4()),
        "source": "/functions/create-task",
        "type": type_,
        "subject": task_id,
        "time": "2030-05-01T12:00:00.000000Z",
        "datacontenttype": "application/json",
        "partitionkey": task_id,
        "userid": user.user_id,
        "sequence": "7",
        **attrs,
    }
    return CloudEvent(attributes, {"task": a_task_copy(task_id)})


def a_task_copy(task_id: str | None = None, title: str = "Water the plants") -> dict[str, Any]:
    """A task as its events carry it: without its owner, whom the userid attribute names."""
    return task_json(Task(id=uuid.UUID(task_id) if task_id else uuid.uuid4(), user_id="", title=title))


def as_received(event: CloudEvent) -> dict[str, Any]:
    """The structured-mode JSON of `event`: what a subscriber must be sent."""
    return {**event.get_attributes(), "data": event.get_data()}


async def send(client: httpx.AsyncClient, event: CloudEvent, mode: str = "binary") -> httpx.Response:
    headers, body = (to_binary if mode == "binary" else to_structured)(event)
    return await client.post("/", headers=headers, content=body)


async def deliveries(user: Api, hook: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    response = await user.get(f"/api/webhooks/{hook['id']}/deliveries", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def make_due(sql: Sql, hook: dict[str, Any]) -> None:
    """Let the backoff pass: the hook's pending deliveries are due now."""
    await sql.pool.execute(
        "UPDATE webhook_delivery SET next_attempt_at = now() WHERE webhook_id = $1 AND status = 'pending'",
        uuid.UUID(hook["id"]),
    )


# === subscriptions =========================================================================================


async def test_creating_a_webhook_returns_a_generated_secret_once_and_lists_it_without(alice: Api) -> None:
    response = await alice.post(
        "/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "event_types": [CREATED, COMPLETED]}
    )
    assert response.status_code == 201, response.text
    hook = response.json()
    assert response.headers["location"] == f"/api/webhooks/{hook['id']}"
    assert response.headers["cache-control"] == "no-store"
    assert len(hook["secret"]) >= 43  # token_urlsafe(32)
    assert hook["event_types"] == [CREATED, COMPLETED]
    listed = (await alice.get("/api/webhooks")).json()
    assert listed == {"items": [{k: v for k, v in hook.items() if k != "secret"}], "next_cursor": None}


async def test_a_given_secret_is_echoed_in_the_creation_response_only(alice: Api) -> None:
    hook = await subscribe(alice, "http://127.0.0.1:9/hook", secret="my-own-secret-0123456789")
    assert hook["secret"] == "my-own-secret-0123456789"
    assert "my-own-secret" not in (await alice.get("/api/webhooks")).text


async def test_outside_production_a_webhook_may_name_a_host_that_does_not_resolve_yet(alice: Api) -> None:
    hook = await subscribe(alice, "http://receiver.invalid/hook")  # .invalid never resolves (RFC 2606)
    assert hook["url"] == "http://receiver.invalid/hook"


async def test_webhooks_are_listed_oldest_first_a_page_at_a_time(alice: Api) -> None:
    made = [await subscribe(alice, f"http://127.0.0.1:9/hook/{i}") for i in range(3)]
    first = (await alice.get("/api/webhooks", params={"limit": 2})).json()
    assert [h["id"] for h in first["items"]] == [made[0]["id"], made[1]["id"]]
    second = (await alice.get("/api/webhooks", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [h["id"] for h in second["items"]] == [made[2]["id"]]
    assert second["next_cursor"] is None


def forged(**values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


HOSTILE_LIST_PARAMETERS = {
    "cursor-not-base64-json": {"cursor": "not-a-cursor"},
    "cursor-a-list": {"cursor": base64.urlsafe_b64encode(b"[1]").decode()},
    "cursor-id-a-number": {"cursor": forged(created_at="2030-01-01T00:00:00+00:00", id=5)},
    "cursor-time-a-number": {"cursor": forged(created_at=5, id=str(uuid.uuid4()))},
    "cursor-time-naive": {"cursor": forged(created_at="2030-01-01T00:00:00", id=str(uuid.uuid4()))},
    "cursor-year-0-in-utc": {"cursor": forged(created_at="0001-01-01T00:00:00+01:00", id=str(uuid.uuid4()))},
    "cursor-missing-id": {"cursor": forged(created_at="2030-01-01T00:00:00+00:00")},
    "limit-0": {"limit": 0},
    "limit-huge": {"limit": 10**30},
    "unknown-parameter": {"sort": "url"},
}


@pytest.mark.parametrize("params", HOSTILE_LIST_PARAMETERS.values(), ids=HOSTILE_LIST_PARAMETERS.keys())
async def test_hostile_list_parameters_are_422_never_500(alice: Api, params: dict[str, Any]) -> None:
    hook = await subscribe(alice, "http://127.0.0.1:9/hook")
    assert_problem(await alice.get("/api/webhooks", params=params), 422)
    assert_problem(await alice.get(f"/api/webhooks/{hook['id']}/deliveries", params=params), 422)


@pytest.mark.parametrize("status", ["lost", "pending\x00", ""])
async def test_an_unknown_delivery_status_filter_is_422(alice: Api, status: str) -> None:
    hook = await subscribe(alice, "http://127.0.0.1:9/hook")
    assert_problem(await alice.get(f"/api/webhooks/{hook['id']}/deliveries", params={"status": status}), 422)


async def test_deleting_a_webhook_removes_it_and_its_deliveries(
    alice: Api, deliver: httpx.AsyncClient
) -> None:
    async with Receiver() as receiver:
        hook = await subscribe(alice, receiver.url)
        assert (await send(deliver, task_event(alice))).status_code == 200
        await background_deliveries_done()
    assert len(await deliveries(alice, hook)) == 1
    assert (await alice.delete(f"/api/webhooks/{hook['id']}")).status_code == 204
    assert (await alice.get("/api/webhooks")).json()["items"] == []
    assert_problem(await alice.get(f"/api/webhooks/{hook['id']}/deliveries"), 404)
    assert_problem(await alice.delete(f"/api/webhooks/{hook['id']}"), 404)


async def test_no_user_sees_or_deletes_another_users_webhook(alice: Api, bob: Api) -> None:
    hook = await subscribe(alice, "http://127.0.0.1:9/hook")
    assert (await bob.get("/api/webhooks")).json()["items"] == []
    assert_problem(await bob.delete(f"/api/webhooks/{hook['id']}"), 404)
    assert_problem(await bob.get(f"/api/webhooks/{hook['id']}/deliveries"), 404)
    assert [h["id"] for h in (await alice.get("/api/webhooks")).json()["items"]] == [hook["id"]]


@pytest.mark.parametrize("path", [f"/api/webhooks/{uuid.uuid4()}", "/api/webhooks/not-a-uuid"])
async def test_an_unknown_webhook_is_not_found(alice: Api, path: str) -> None:
    assert_problem(await alice.delete(path), 404)
    assert_problem(await alice.get(path + "/deliveries"), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/webhooks"),
        ("GET", "/api/webhooks"),
        ("DELETE", f"/api/webhooks/{uuid.uuid4()}"),
        ("GET", f"/api/webhooks/{uuid.uuid4()}/deliveries"),
    ],
)
async def test_every_webhook_route_requires_a_token(alice: Api, method: str, path: str) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "event_types": [CREATED]} if method == "POST" else None
    assert_problem(await alice.request(method, path, token=None, json=body), 401)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "not a url", "event_types": [CREATED]}, "url"),
        ({"url": "ftp://example.com/hook", "event_types": [CREATED]}, "url"),
        ({"url": "http://user:pw@127.0.0.1:9/hook", "event_types": [CREATED]}, "url"),
        ({"url": "", "event_types": [CREATED]}, "url"),
        ({"url": "http://127.0.0.1:9/hook", "event_types": ["dev.todo.task.exploded"]}, "event_types"),
        ({"url": "http://127.0.0.1:9/hook", "event_types": []}, "event_types"),
        ({"url": "http://127.0.0.1:9/hook", "event_types": [CREATED], "secret": "too-short"}, "secret"),
        ({"url": "http://127.0.0.1:9/hook", "event_types": [CREATED], "active": True}, "active"),
        ({"event_types": [CREATED]}, "url"),
        ({"url": "http://127.0.0.1:9/ho\x00ok", "event_types": [CREATED]}, "url"),
        ({"url": "http://127.0.0.1:9/hook", "event_types": [CREATED], "secret": "nul\x00" * 8}, "secret"),
        ({"url": "http://127.0.0.1:9/hook", "event_types": [CREATED + "\x00"]}, "event_types"),
        ({"url": "http://127.0.0.1:99999/hook", "event_types": [CREATED]}, "url"),
        ({"url": "http://127.0.0.1:0/hook", "event_types": [CREATED]}, "url"),
        ({"url": "http://hooks example.com/hook", "event_types": [CREATED]}, "url"),
        ({"url": "http://hooks_example.com/hook", "event_types": [CREATED]}, "url"),
        ({"url": "http://hooks..example.com/hook", "event_types": [CREATED]}, "url"),
        ({"url": "http://127.1/hook", "event_types": [CREATED]}, "url"),
    ],
)
async def test_invalid_webhooks_are_unprocessable_naming_the_field(
    alice: Api, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(await alice.post("/api/webhooks", json=body), 422)
    assert field in [e["field"] for e in problem["errors"]]
    assert (await alice.get("/api/webhooks")).json()["items"] == []


async def test_a_user_may_have_ten_webhooks_and_the_eleventh_conflicts(alice: Api, bob: Api) -> None:
    made = [await subscribe(alice, f"http://127.0.0.1:9/hook/{i}") for i in range(10)]
    problem = assert_problem(
        await alice.post("/api/webhooks", json={"url": "http://127.0.0.1:9/x", "event_types": [CREATED]}), 409
    )
    assert problem["type"] == "/problems/webhook-limit-reached"
    await subscribe(bob, "http://127.0.0.1:9/hook")  # the limit is per user
    assert (await alice.delete(f"/api/webhooks/{made[0]['id']}")).status_code == 204
    await subscribe(alice, "http://127.0.0.1:9/again")


async def test_concurrent_creates_cannot_exceed_the_limit(alice: Api, sql: Sql) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "event_types": [CREATED]}
    responses = await asyncio.gather(*(alice.post("/api/webhooks", json=body) for _ in range(16)))
    assert sorted(r.status_code for r in responses) == [201] * 10 + [409] * 6
    assert await sql.pool.fetchval("SELECT count(*) FROM webhook WHERE user_id = $1", alice.user_id) == 10


@pytest.mark.parametrize(
    "url",
    ["http://hooks.example.com/in", "https://127.0.0.1/hook", "https://10.0.0.1/hook", "https://[::1]/"],
)
async def test_in_production_create_refuses_http_and_non_public_addresses(
    alice: Api, production: None, url: str
) -> None:
    problem = assert_problem(
        await alice.post("/api/webhooks", json={"url": url, "event_types": [CREATED]}), 422
    )
    assert [e["field"] for e in problem["errors"]] == ["url"]


# === deliveries ========================================================================================


@pytest.mark.parametrize("mode", ["binary", "structured"])
async def test_an_event_is_posted_as_a_signed_structured_cloudevent(
    alice: Api, deliver: httpx.AsyncClient, mode: str
) -> None:
    async with Receiver() as receiver:
        hook = await subscribe(alice, receiver.url)
        event = task_event(alice)
        assert (await send(deliver, event, mode)).status_code == 200
        request = await receiver.next()
        await background_deliveries_done()
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/cloudevents+json"
    verify_signature(request, hook["secret"])
    assert json.loads(request.body) == as_received(event)
    [delivery] = await deliveries(alice, hook)
    assert request.headers["x-todo-delivery"] == delivery["id"]
    assert delivery["event_id"] == event["id"] and delivery["event_type"] == CREATED
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200 and delivery["response_excerpt"] == "ok"
    assert delivery["next_attempt_at"] is None and delivery["last_error"] is None


async def test_a_task_created_through_the_api_reaches_its_owners_webhook(
    alice: Api, deliver: httpx.AsyncClient, sql: Sql
) -> None:
    async with Receiver() as receiver:
        hook = await subscribe(alice, receiver.url)
        task = await alice.create(title="Water the plants")
        [row] = await sql.events(task["id"])
        event = CloudEvent(
            {
                "id": str(row["id"]),
                "source": row["source"],
                "type": row["type"],
                "subject": row["subject"],
                "time": row["time"].isoformat(),
                "datacontenttype": "application/json",
                "partitionkey": row["partition_key"],
                "userid": row["user_id"],
            },
            json.loads(row["data"]) if isinstance(row["data"], str) else row["data"],
        )
        assert (await send(deliver, event)).status_code == 200
        request = await receiver.next()
    verify_signature(request, hook["secret"])
    assert json.loads(request.body)["data"]["task"] == task


async def test_text_that_merely_spells_an_escape_is_delivered_as_is(
    alice: Api, deliver: httpx.AsyncClient
) -> None:
    async with Receiver() as receiver:
        await subscribe(alice, receiver.url)
        data = {"task": a_task_copy(title="\\u0000 is not NUL")}
        assert (await send(deliver, CloudEvent(task_event(alice).get_attributes(), data))).status_code == 200
        request = await receiver.next()
    assert json.loads(request.body)["data"] == data


async def test_a_redelivered_event_creates_and_sends_one_delivery(
    alice: Api, deliver: httpx.AsyncClient
) -> None:
    async with Receiver() as receiver:
        hook = await subscribe(alice, receiver.url)
        event = task_event(alice)
        for mode in ("binary", "structured", "binary"):
            assert (await send(deliver, event, mode)).status_code == 200
        await background_deliveries_done()
        assert len(receiver.received) == 1
    assert len(await deliveries(alice, hook)) == 1


async def test_only_the_event_users_subscriptions_to_its_type_are_sent_it(
    alice: Api, bob: Api, deliver: httpx.AsyncClient
) -> None:
    async with Receiver() as created, Receiver() as completed, Receiver() as bobs:
        await subscribe(alice, created.url, CREATED)
        await subscribe(alice, completed.url, COMPLETED)
        await subscribe(bob, bobs.url, CREATED)
        assert (await send(deliver, task_event(alice))).status_code == 200
        await background_deliveries_done()
        assert (len(created.received), len(completed.received), len(bobs.received)) == (1, 0, 0)


async def stored_event(sql: Sql, subject: str, type_: str) -> CloudEvent:
    """The newest CloudEvent of `type_` about `subject` the outbox holds, as the broker carries it."""
    row = await sql.pool.fetchrow(
        "SELECT sequence FROM task_event WHERE subject = $1 AND type = $2 ORDER BY sequence DESC LIMIT 1",
        subject,
        type_,
    )
    async with get_sessionmaker()() as session:
        payload = to_cloudevent_json(await session.get(TaskEvent, row["sequence"]))
    return CloudEvent(payload, payload.pop("data"))


async def test_a_projects_events_reach_its_members_at_delivery_and_nothing_after_they_leave(
    new_user: Callable[[], Api], deliver: httpx.AsyncClient, sql: Sql
) -> None:
    alice, bob, carol, outsider = new_user(), new_user(), new_user(), new_user()
    project = (await alice.post("/api/projects", json={"name": "p"})).json()["id"]
    for member in (bob, carol):
        body = {"user_id": member.user_id, "role": "viewer"}
        assert (await alice.post(f"/api/projects/{project}/members", json=body)).status_code == 201
    async with Receiver() as receiver:
        hooks = {u.user_id: await subscribe(u, receiver.url, CREATED) for u in (alice, bob, carol, outsider)}
        before = await alice.create(title="before", project_id=project)
        assert (await send(deliver, await stored_event(sql, before["id"], CREATED))).status_code == 200
        await alice.delete(f"/api/projects/{project}/members/{carol.user_id}")
        # Written while carol was a member, but its delivery is created after she left: not hers.
        during = await alice.create(title="during", project_id=project)
        after = await alice.create(title="after", project_id=project)
        for task in (after, during, before):
            assert (await send(deliver, await stored_event(sql, task["id"], CREATED))).status_code == 200
        await background_deliveries_done()
        rows = await sql.pool.fetch(
            "SELECT w.user_id, d.user_id AS delivery_user, d.payload->'data'->'task'->>'title' AS title"
            " FROM webhook_delivery d JOIN webhook w ON w.id = d.webhook_id WHERE w.id = ANY($1::uuid[])",
            [uuid.UUID(h["id"]) for h in hooks.values()],
        )
    got = collections.defaultdict(set)
    for row in rows:
        assert row["delivery_user"] == row["user_id"]
        got[row["user_id"]].add(row["title"])
    assert got == {
        alice.user_id: {"before", "during", "after"},
        bob.user_id: {"before", "during", "after"},
        carol.user_id: {"before"},
    }
    assert len(receiver.received) == 7


async def test_an_event_naming_another_users_task_is_rejected_and_sends_nothing(
    alice: Api, bob: Api, deliver: httpx.AsyncClient, sql: Sql
) -> None:
    task = await alice.create(title="Alice's")
    async with Receiver() as receiver:
        await subscribe(bob, receiver.url)
        forged = task_event(bob, task_id=task["id"])
        assert (await send(deliver, forged)).status_code == 422  # dead-lettered, not retried
        await background_deliveries_done()
        assert receiver.received == []
    assert (
        await sql.pool.fetchval("SELECT count(*) FROM webhook_delivery WHERE user_id = $1", bob.user_id) == 0
    )


async def test_an_event_that_names_no_task_is_rejected_since_its_owner_cannot_be_checked(
    bob: Api, deliver: httpx.AsyncClient, sql: Sql
) -> None:
    # Without data.task the ownership check had nothing to look up, and the event went out unchecked.
    async with Receiver() as receiver:
        await subscribe(bob, receiver.url)
        unchecked = CloudEvent(task_event(bob).get_attributes(), {"title": "whose?"})
        assert (await send(deliver, unchecked)).status_code == 422
        await background_deliveries_done()
        assert receiver.received == []
    assert (
        await sql.pool.fetchval("SELECT count(*) FROM webhook_delivery WHERE user_id = $1", bob.user_id) == 0
    )


@pytest.mark.parametrize(
    ("attrs", "data"),
    [
        ({"type": "dev.todo.recurring-task.created"}, None),
        ({"userid": ""}, None),
        ({}, {"task": {"id": 5}}),
        ({}, {"task": ["not", "an", "object"]}),
        ({}, {"task": a_task_copy(title="nul \x00")}),
        ({"subject": "nul \x00"}, None),
    ],
    ids=[
        "type-not-consumed",
        "no-userid",
        "task-id-a-number",
        "task-a-list",
        "nul-in-data",
        "nul-in-subject",
    ],
)
async def test_an_event_deliver_webhooks_can_never_handle_is_422_never_500(
    alice: Api, deliver: httpx.AsyncClient, attrs: dict[str, str], data: dict[str, Any] | None
) -> None:
    async with Receiver() as receiver:
        await subscribe(alice, receiver.url)
        event = task_event(alice, **attrs)
        if data is not None:
            event = CloudEvent(event.get_attributes(), data)
        assert (await send(deliver, event, "structured")).status_code == 422
        await background_deliveries_done()
        assert receiver.received == []


async def test_a_retry_keeps_the_delivery_id_and_succeeds_once_the_receiver_recovers(
    alice: Api, deliver: httpx.AsyncClient, retry: Callable[[], Any], sql: Sql
) -> None:
    async with Receiver(Reply(503, b"busy"), Reply(200)) as receiver:
        hook = await subscribe(alice, receiver.url)
        assert (await send(deliver, task_event(alice))).status_code == 200
        first = await receiver.next()
        await background_deliveries_done()
        [delivery] = await deliveries(alice, hook)
        assert delivery["status"] == "pending" and delivery["attempts"] == 1
        assert delivery["last_status_code"] == 503 and delivery["last_error"] == "HTTP 503"
        assert delivery["response_excerpt"] == "busy" and delivery["next_attempt_at"] is not None
        assert (await retry())["claimed"] == 0  # not due yet: the backoff holds it
        await make_due(sql, hook)
        await retry()
        second = await receiver.next()
    assert first.headers["x-todo-delivery"] == second.headers["x-todo-delivery"] == delivery["id"]
    assert first.body == second.body
    verify_signature(second, hook["secret"])
    [delivery] = await deliveries(alice, hook)
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 2


async def test_a_receiver_down_then_up_gets_the_delivery_on_a_retry_tick(
    alice: Api, deliver: httpx.AsyncClient, retry: Callable[[], Any], sql: Sql
) -> None:
    port = free_port()
    hook = await subscribe(alice, f"http://127.0.0.1:{port}/hook")
    event = task_event(alice)
    assert (await send(deliver, event)).status_code == 200  # nothing listens yet
    await background_deliveries_done()
    [delivery] = await deliveries(alice, hook)
    assert delivery["status"] == "pending" and delivery["attempts"] == 1
    assert delivery["last_status_code"] is None and "ConnectError" in delivery["last_error"]
    async with Receiver(port=port) as receiver:
        await make_due(sql, hook)
        counts = await retry()
        request = await receiver.next()
    assert counts["succeeded"] >= 1
    assert request.headers["x-todo-delivery"] == delivery["id"]
    assert json.loads(request.body) == as_received(event)
    [delivery] = await deliveries(alice, hook)
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 2


async def test_a_hung_receiver_of_one_user_does_not_delay_another_users_delivery(
    alice: Api,
    bob: Api,
    deliver: httpx.AsyncClient,
    retry: Callable[[], Any],
    sql: Sql,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "webhook_timeout_seconds", 2.0)
    async with Receiver(Reply(delay=60)) as hung, Receiver(Reply(500), Reply(200)) as fine:
        alices = await subscribe(alice, hung.url)
        bobs = await subscribe(bob, fine.url)
        # The fast path: acknowledging Alice's event does not wait for her receiver.
        started = time.monotonic()
        assert (await send(deliver, task_event(alice))).status_code == 200
        assert (await send(deliver, task_event(bob))).status_code == 200
        await hung.next()
        assert (await fine.next()).at - started < 1.0
        assert (await deliveries(alice, alices))[0]["attempts"] == 0  # hers still hangs
        await background_deliveries_done()
        [hers] = await deliveries(alice, alices)
        assert hers["status"] == "pending" and hers["last_error"] == "timed out after 2s"
        # A retry tick attempts both at once: Bob's retry does not queue behind Alice's.
        await make_due(sql, alices)
        await make_due(sql, bobs)
        started = time.monotonic()
        tick = asyncio.create_task(retry())
        assert (await fine.next()).at - started < 1.0
        assert not tick.done()
        await tick
    assert (await deliveries(bob, bobs))[0]["status"] == "succeeded"


async def test_a_delivery_that_never_succeeds_fails_after_the_last_attempt(
    alice: Api, deliver: httpx.AsyncClient, retry: Callable[[], Any], sql: Sql
) -> None:
    max_attempts = get_settings().webhook_max_attempts
    async with Receiver(Reply(500, b"broken")) as receiver:
        hook = await subscribe(alice, receiver.url)
        assert (await send(deliver, task_event(alice))).status_code == 200
        await background_deliveries_done()
        for _ in range(max_attempts - 1):
            await make_due(sql, hook)
            await retry()
        await make_due(sql, hook)
        assert (await retry())["claimed"] == 0  # failed rows are never claimed again
        assert len(receiver.received) == max_attempts
        assert len({r.headers["x-todo-delivery"] for r in receiver.received}) == 1
    [failed] = await deliveries(alice, hook, status="failed")
    assert failed["attempts"] == max_attempts and failed["next_attempt_at"] is None
    assert failed["last_status_code"] == 500 and failed["response_excerpt"] == "broken"
    assert await deliveries(alice, hook, status="pending") == []


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    alice: Api, deliver: httpx.AsyncClient
) -> None:
    async with Receiver() as elsewhere:
        async with Receiver(Reply(307, b"", {"Location": elsewhere.url})) as receiver:
            hook = await subscribe(alice, receiver.url)
            assert (await send(deliver, task_event(alice))).status_code == 200
            await receiver.next()
            await background_deliveries_done()
        assert elsewhere.received == []
    [delivery] = await deliveries(alice, hook)
    assert delivery["status"] == "pending" and delivery["last_status_code"] == 307
    assert "redirect" in delivery["last_error"] and "not followed" in delivery["last_error"]


async def test_only_an_excerpt_of_the_response_body_is_stored(alice: Api, deliver: httpx.AsyncClient) -> None:
    async with Receiver(Reply(200, "é".encode() * 50_000)) as receiver:
        hook = await subscribe(alice, receiver.url)
        assert (await send(deliver, task_event(alice))).status_code == 200
        await receiver.next()
        await background_deliveries_done()
    [delivery] = await deliveries(alice, hook)
    assert delivery["status"] == "succeeded"
    assert delivery["response_excerpt"] == "é" * 512


async def test_deliveries_are_listed_newest_first_by_status_a_page_at_a_time(
    alice: Api, deliver: httpx.AsyncClient
) -> None:
    async with Receiver(Reply(200), Reply(500), Reply(200)) as receiver:
        hook = await subscribe(alice, receiver.url)
        events = [task_event(alice) for _ in range(3)]
        for event in events:
            assert (await send(deliver, event)).status_code == 200
            await background_deliveries_done()
    newest_first = [e["id"] for e in reversed(events)]
    page = (await alice.get(f"/api/webhooks/{hook['id']}/deliveries", params={"limit": 2})).json()
    rest = await deliveries(alice, hook, limit=2, cursor=page["next_cursor"])
    assert [d["event_id"] for d in page["items"] + rest] == newest_first
    assert [d["event_id"] for d in await deliveries(alice, hook, status="pending")] == [events[1]["id"]]
    assert [d["event_id"] for d in await deliveries(alice, hook, status="succeeded")] == [
        events[2]["id"],
        events[0]["id"],
    ]


async def test_concurrent_retry_ticks_never_post_the_same_delivery_twice(
    alice: Api, deliver: httpx.AsyncClient, retry: Callable[[], Any], sql: Sql
) -> None:
    async with Receiver(Reply(500)) as receiver:
        hooks = [await subscribe(alice, receiver.url) for _ in range(6)]
        for _ in range(3):
            assert (await send(deliver, task_event(alice))).status_code == 200
            await background_deliveries_done()  # one event at a time: all within the bound
        assert len(receiver.received) == 18
        receiver.replies = [Reply(200)]
        for hook in hooks:
            await make_due(sql, hook)
        await asyncio.gather(*(retry() for _ in range(4)))
        retried = receiver.received[18:]
    ids = [r.headers["x-todo-delivery"] for r in retried]
    assert len(ids) == 18 and len(set(ids)) == 18


async def drain(retry: Callable[[], Any], sql: Sql, user: Api, expected: int) -> None:
    """Tick until all `expected` deliveries of `user` have succeeded (a bounded number of ticks)."""
    for _ in range(40):
        await background_deliveries_done()
        done = await sql.pool.fetchval(
            "SELECT count(*) FROM webhook_delivery WHERE user_id = $1 AND status = 'succeeded'", user.user_id
        )
        if done == expected:
            return
        await retry()
    raise AssertionError(f"{done} of {expected} deliveries succeeded")


async def test_a_burst_of_events_to_many_hooks_stays_within_the_bound_and_posts_each_delivery_once(
    alice: Api, deliver: httpx.AsyncClient, retry: Callable[[], Any], sql: Sql
) -> None:
    bound = get_settings().webhook_max_in_flight
    events = 20
    async with Receiver(Reply(200, delay=0.2)) as receiver:
        hooks = [await subscribe(alice, f"{receiver.url}/{i}") for i in range(10)]
        # The burst, with retry ticks racing the fast path's attempts from the start.
        burst = asyncio.gather(*(send(deliver, task_event(alice)) for _ in range(events)))
        ticks = asyncio.gather(*(retry() for _ in range(3)))
        responses, _ = await asyncio.gather(burst, ticks)
        assert [r.status_code for r in responses] == [200] * events  # no 503: the pool is not starved
        await drain(retry, sql, alice, events * len(hooks))
    assert receiver.peak <= bound, f"{receiver.peak} POSTs in flight at once; the bound is {bound}"
    posts = collections.Counter(r.headers["x-todo-delivery"] for r in receiver.received)
    assert len(posts) == events * len(hooks)
    assert set(posts.values()) == {1}, [d for d, n in posts.items() if n > 1]  # none POSTed twice


async def test_beyond_the_bound_new_deliveries_wait_for_the_retry_tick_and_no_post_pins_a_connection(
    alice: Api,
    deliver: httpx.AsyncClient,
    retry: Callable[[], Any],
    sql: Sql,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "webhook_timeout_seconds", 2.0)
    bound = get_settings().webhook_max_in_flight
    async with Receiver(Reply(delay=60)) as hung:
        for i in range(10):
            await subscribe(alice, f"{hung.url}/{i}")
        for _ in range(2):  # 20 deliveries
            assert (await send(deliver, task_event(alice))).status_code == 200
        for _ in range(bound):
            await hung.next()
        pinned = get_engine().pool.checkedout()  # while `bound` POSTs hang
        await background_deliveries_done()  # they time out
        assert len(hung.received) == bound
    assert pinned == 0  # the claim and the record each hold a connection briefly; a POST holds none
    waiting = await sql.pool.fetchval(
        "SELECT count(*) FROM webhook_delivery"
        " WHERE user_id = $1 AND attempts = 0 AND next_attempt_at <= now()",
        alice.user_id,
    )
    assert waiting == 20 - bound  # due, for the retry tick: not queued in the process


async def test_a_lease_starts_with_its_attempt_so_rows_waiting_for_a_slot_are_never_posted_twice(
    alice: Api,
    deliver: httpx.AsyncClient,
    retry: Callable[[], Any],
    sql: Sql,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A lease much shorter than a tick's batch takes at the bound: had it started when the batch was
    # claimed, the rows still waiting for a slot would be due again and a second tick would POST them.
    monkeypatch.setattr(webhook_delivery, "lease", lambda settings: timedelta(seconds=2))
    monkeypatch.setattr(get_settings(), "webhook_timeout_seconds", 1.5)
    async with Receiver(Reply(500)) as receiver:
        hooks = [await subscribe(alice, f"{receiver.url}/{i}") for i in range(10)]
        for _ in range(5):
            assert (await send(deliver, task_event(alice))).status_code == 200
        await background_deliveries_done()  # 50 pending, one attempt each
        first = len(receiver.received)
        receiver.replies = [Reply(200, delay=0.8)]  # 50 at 16 a time: about 3.2 s for one tick
        for hook in hooks:
            await make_due(sql, hook)
        one = asyncio.create_task(retry())
        await asyncio.sleep(2.2)  # past the lease of the first slots' worth
        counts = [await retry(), await one]
        await drain(retry, sql, alice, 50)
    retried = collections.Counter(r.headers["x-todo-delivery"] for r in receiver.received[first:])
    assert len(retried) == 50 and set(retried.values()) == {1}, retried.most_common(3)
    assert sum(c["claimed"] for c in counts) <= 50


async def test_each_post_carries_the_events_sequence_in_a_header_and_in_the_payload(
    alice: Api, deliver: httpx.AsyncClient
) -> None:
    async with Receiver() as receiver:
        await subscribe(alice, receiver.url)
        assert (await send(deliver, task_event(alice, sequence="12345"))).status_code == 200
        request = await receiver.next()
    assert request.headers["x-todo-sequence"] == "12345"
    assert json.loads(request.body)["sequence"] == "12345"


@pytest.mark.parametrize("sequence", ["-1", "1e3", "7\r\nX-Evil: 1", "\u0663", "", " 7"])
async def test_an_event_whose_sequence_is_not_a_decimal_integer_is_422(
    alice: Api, deliver: httpx.AsyncClient, sequence: str
) -> None:
    async with Receiver() as receiver:
        await subscribe(alice, receiver.url)
        assert (await send(deliver, task_event(alice, sequence=sequence), "structured")).status_code == 422
        await background_deliveries_done()
        assert receiver.received == []


async def test_in_production_a_delivery_to_a_non_public_address_is_not_sent(
    alice: Api, deliver: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Created where loopback is allowed, then attempted under production rules: the check at delivery
    # time (what DNS says then) holds on its own, which is what defeats DNS rebinding.
    async with Receiver() as receiver:
        hook = await subscribe(alice, receiver.url)
        settings = get_settings().model_copy(update={"todo_env": "production"})
        monkeypatch.setattr(webhook_delivery, "get_settings", lambda: settings)
        assert (await send(deliver, task_event(alice))).status_code == 200
        await background_deliveries_done()
        assert receiver.received == []
    [delivery] = await deliveries(alice, hook)
    assert delivery["status"] == "pending" and delivery["last_status_code"] is None
    assert delivery["last_error"].startswith("not sent: ")


async def test_the_retry_tick_answers_with_its_counts(retry: Callable[[], Any]) -> None:
    counts = await retry()
    assert set(counts) == {"claimed", "succeeded", "retrying", "failed", "errors"}
    assert all(isinstance(v, int) and v >= 0 for v in counts.values())


async def test_an_attempt_tries_each_checked_address_until_one_connects_keeping_the_host_name() -> None:
    async def localhost(host: str, port: int) -> list[str]:
        return ["::1", "127.0.0.1"]  # the receiver listens on 127.0.0.1 only

    async with Receiver() as receiver:
        url = f"http://localhost:{receiver.port}/hook"
        delivery = webhook_delivery.Claim(uuid.uuid4(), 0, {"id": "e1"}, url, "a-secret-of-sixteen")
        outcome = await webhook_delivery.post(delivery, get_settings(), resolve=localhost)
        request = await receiver.next()
    assert outcome.ok, outcome
    assert request.headers["host"] == f"localhost:{receiver.port}"


# === each webhook function as its own process ============================================================


async def test_the_webhook_functions_work_as_their_own_processes_over_real_http(
    function_process: Callable[[str], str], new_user: Callable[[], Api], sql: Sql
) -> None:
    """As Knative runs them: functions-framework processes, real HTTP CloudEvents, a real receiver."""
    names = [fn.name for fn in WEBHOOK_FUNCTIONS]
    urls = await asyncio.gather(*(asyncio.to_thread(function_process, name) for name in names))
    processes = {
        name: httpx.AsyncClient(base_url=url, timeout=10) for name, url in zip(names, urls, strict=True)
    }
    try:
        user = new_user()
        remote = Api(processes, user.secret, user.user_id)
        async with Receiver(Reply(500), Reply(200)) as receiver:
            hook = await subscribe(remote, receiver.url)
            assert [h["id"] for h in (await remote.get("/api/webhooks")).json()["items"]] == [hook["id"]]
            event = task_event(remote)
            assert (await send(processes["deliver-webhooks"], event)).status_code == 200
            first = await receiver.next()  # the fast path, in the deliver-webhooks process
            for _ in range(50):  # its outcome is recorded just after the receiver answers
                [delivery] = await deliveries(remote, hook)
                if delivery["attempts"]:
                    break
                await asyncio.sleep(0.1)
            assert delivery["status"] == "pending" and delivery["last_status_code"] == 500
            await make_due(sql, hook)
            tick = await processes["retry-webhook-deliveries"].post("/")
            assert tick.status_code == 200 and tick.json()["succeeded"] >= 1
            second = await receiver.next()
        for request in (first, second):
            verify_signature(request, hook["secret"])
            assert json.loads(request.body) == as_received(event)
            assert request.headers["x-todo-delivery"] == delivery["id"]
        assert (await deliveries(remote, hook))[0]["status"] == "succeeded"
        assert (await send(processes["deliver-webhooks"], task_event(remote, userid=""))).status_code == 422
        assert (await remote.delete(f"/api/webhooks/{hook['id']}")).status_code == 204
    finally:
        for client in processes.values():
            await client.aclose()
