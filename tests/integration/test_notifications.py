"""Notifications end to end: real reminder events (the checker's outbox rows) fed to deliver-notification's
functions-framework app in binary and structured mode; the list and read routes through their apps; the
email channel through a stand-in Dapr sidecar that sends to a local SMTP server (aiosmtpd); the webhook
path for the same events; and the four functions as their own processes. Real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from cloudevents.kafka import to_binary as kafka_binary
from detached import background_deliveries_done
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from taskapi import Api, Sql, assert_problem, mint

from todo_backend import email as todo_email
from todo_backend.bootstrap import unit_of_work
from todo_backend.catalog import Delivery
from todo_backend.db import get_engine, get_sessionmaker
from todo_backend.devstack import dispatcher
from todo_backend.devstack.runner import free_port
from todo_backend.fields import utcnow
from todo_backend.models import TaskEvent
from todo_backend.reminders import CheckDueTasks, check_due_tasks
from todo_backend.settings import get_settings
from todo_backend.stored import to_cloudevent_json

REMINDER_DUE = "dev.todo.reminder.due"


@pytest.fixture
def new_user(function_clients: dict[str, httpx.AsyncClient], jwt_secret: str) -> Callable[..., Api]:
    """A user no other test has (`user_id` to choose the id), routed by the catalog like the gateway."""

    def make(user_id: str | None = None) -> Api:
        return Api(function_clients, jwt_secret, user_id or f"user-{uuid.uuid4()}")

    return make


@pytest.fixture
def deliver(function_clients: dict[str, httpx.AsyncClient]) -> Callable[..., Any]:
    async def post(event: CloudEvent, mode: str = "binary") -> httpx.Response:
        headers, body = (to_binary if mode == "binary" else to_structured)(event)
        return await function_clients["deliver-notification"].post("/", headers=headers, content=body)

    return post


async def reminder_events(
    user: Api, *titles: str, due_in: timedelta = timedelta(minutes=30)
) -> list[CloudEvent]:
    """For each title a task of `user` due in `due_in` (reminded an hour before), and the reminder.due
    CloudEvent the checker wrote for it, as the broker would carry it."""
    due = utcnow() + due_in
    tasks = [
        await user.create(title=title, due_date=due.isoformat(), remind_before_minutes=60) for title in titles
    ]
    await check_due_tasks(CheckDueTasks(batch_size=500), unit_of_work("check-due-tasks"))
    async with get_sessionmaker()() as session:
        stmt = select(TaskEvent).where(
            TaskEvent.type == REMINDER_DUE, TaskEvent.subject.in_([t["id"] for t in tasks])
        )
        rows = {row.subject: row for row in (await session.execute(stmt)).scalars()}
    events = []
    for task in tasks:
        payload = to_cloudevent_json(rows[task["id"]])
        events.append(CloudEvent(payload, payload.pop("data")))
    return events


async def notifications(user: Api, **params: Any) -> list[dict[str, Any]]:
    """Every notification the list returns for `params`, following next_cursor to the end."""
    return await user.list_all("/api/notifications", **params)


# --- deliver-notification -----------------------------------------------------------------------------


@pytest.mark.parametrize("modes", [("binary", "binary"), ("structured", "binary"), ("binary", "structured")])
async def test_a_reminder_delivered_twice_in_either_mode_makes_one_notification(
    alice: Api, deliver: Callable[..., Any], sql: Sql, modes: tuple[str, str]
) -> None:
    [event] = await reminder_events(alice, "Water the plants")
    first, again = [await deliver(event, mode) for mode in modes]
    assert (first.status_code, again.status_code) == (200, 200)

    [notification] = await notifications(alice)
    data = event.get_data()
    assert data is not None
    assert notification["task_id"] == data["task"]["id"]
    assert notification["title"] == "Water the plants"
    assert notification["body"].startswith("Due ") and notification["body"].endswith("(in 30 minutes)")
    assert notification["due_at"] == data["due_at"]
    assert notification["read_at"] is None
    assert notification["kind"] == "reminder" and notification["project_id"] is None
    assert set(notification) == {
        "id",
        "kind",
        "task_id",
        "project_id",
        "title",
        "body",
        "due_at",
        "created_at",
        "read_at",
    }
    count = await sql.pool.fetchval(
        "SELECT count(*) FROM notification WHERE event_id = $1", uuid.UUID(event["id"])
    )
    assert count == 1


async def test_a_late_reminder_says_how_overdue_the_task_is(alice: Api, deliver: Callable[..., Any]) -> None:
    [event] = await reminder_events(alice, "Pay the rent", due_in=-timedelta(hours=3))
    assert (await deliver(event)).status_code == 200
    [notification] = await notifications(alice)
    assert notification["body"].startswith("Overdue: was due ")
    assert notification["body"].endswith("(3 hours ago)")


async def test_a_reminder_for_another_users_task_is_poison_and_refused_with_422(
    alice: Api, bob: Api, deliver: Callable[..., Any]
) -> None:
    [event] = await reminder_events(alice, "Alice's task")
    event["userid"] = bob.user_id  # the event claims the task is Bob's
    response = await deliver(event)
    assert response.status_code == 422
    assert await notifications(bob) == [] and await notifications(alice) == []


@pytest.mark.parametrize(
    "data", [{}, {"task": {"id": "nope"}}, {"task": None, "due_at": "2030-01-01T00:00:00Z"}]
)
async def test_an_event_that_is_not_a_reminder_is_refused_with_422(
    alice: Api, deliver: Callable[..., Any], data: dict[str, Any]
) -> None:
    event = CloudEvent(
        {"type": REMINDER_DUE, "source": "/functions/check-due-tasks", "userid": alice.user_id}, data
    )
    assert (await deliver(event)).status_code == 422
    assert await notifications(alice) == []


async def test_a_reminder_for_a_task_deleted_since_still_notifies(
    alice: Api, deliver: Callable[..., Any]
) -> None:
    [event] = await reminder_events(alice, "Deleted after the reminder went out")
    assert (await alice.delete(f"/api/tasks/{event['subject']}")).status_code == 204
    assert (await deliver(event)).status_code == 200
    assert [n["title"] for n in await notifications(alice)] == ["Deleted after the reminder went out"]


# --- list-notifications and mark-notification-read ---------------------------------------------------


async def test_notifications_are_listed_newest_first_with_a_cursor_and_an_unread_filter(
    alice: Api, bob: Api, deliver: Callable[..., Any]
) -> None:
    events = await reminder_events(alice, *(f"task {i}" for i in range(5)))
    for event in events:  # one after another: each newer than the last
        assert (await deliver(event)).status_code == 200
    [bobs] = await reminder_events(bob, "Bob's task")
    assert (await deliver(bobs)).status_code == 200

    newest_first = [f"task {i}" for i in reversed(range(5))]
    page = (await alice.get("/api/notifications", params={"limit": 2})).json()
    assert [n["title"] for n in page["items"]] == newest_first[:2]
    assert page["next_cursor"] is not None
    assert [n["title"] for n in await notifications(alice, limit=2)] == newest_first

    listed = await notifications(alice)
    for n in (listed[1], listed[3]):
        assert (await alice.post(f"/api/notifications/{n['id']}/read")).status_code == 200
    unread = await notifications(alice, unread="true", limit=1)
    assert [n["title"] for n in unread] == ["task 4", "task 2", "task 0"]
    assert all(n["read_at"] is None for n in unread)
    assert len(await notifications(alice, unread="false")) == 5
    assert [n["title"] for n in await notifications(bob)] == ["Bob's task"]


async def test_marking_a_notification_read_is_idempotent_and_keeps_the_first_read_at(
    alice: Api, deliver: Callable[..., Any]
) -> None:
    [event] = await reminder_events(alice, "Read me")
    await deliver(event)
    [notification] = await notifications(alice)
    url = f"/api/notifications/{notification['id']}/read"

    first = await alice.post(url)
    assert first.status_code == 200, first.text
    assert first.json() == {**notification, "read_at": first.json()["read_at"]}
    read_at = datetime.fromisoformat(first.json()["read_at"])
    assert abs((utcnow() - read_at).total_seconds()) < 60
    again = await alice.post(url)
    assert (again.status_code, again.json()) == (200, first.json())
    assert (await notifications(alice))[0]["read_at"] == first.json()["read_at"]


async def test_a_user_cannot_see_or_read_another_users_notifications(
    alice: Api, bob: Api, deliver: Callable[..., Any]
) -> None:
    [event] = await reminder_events(alice, "Private")
    await deliver(event)
    [notification] = await notifications(alice)
    assert await notifications(bob) == []
    assert_problem(await bob.post(f"/api/notifications/{notification['id']}/read"), 404)
    assert (await notifications(alice))[0]["read_at"] is None  # untouched
    assert_problem(await alice.post(f"/api/notifications/{uuid.uuid4()}/read"), 404)
    assert_problem(await alice.post("/api/notifications/not-a-uuid/read"), 404)


@pytest.mark.parametrize(
    "params",
    [{"unred": "true"}, {"unread": "maybe"}, {"limit": "0"}, {"limit": "201"}, {"cursor": "garbage"}],
)
async def test_unknown_or_invalid_query_parameters_are_refused_with_422(
    alice: Api, params: dict[str, str]
) -> None:
    assert_problem(await alice.get("/api/notifications", params=params), 422)


async def test_both_routes_need_a_valid_token(alice: Api, jwt_secret: str) -> None:
    notification = f"/api/notifications/{uuid.uuid4()}/read"
    for response in (
        await alice.get("/api/notifications", token=None),
        await alice.post(notification, token=None),
        await alice.get("/api/notifications", token=mint(jwt_secret, alice.user_id, lifetime=-60)),
    ):
        assert_problem(response, 401)


# --- other subscribers: webhooks ------------------------------------------------------------------------


class LocalServer:
    """A real HTTP server on 127.0.0.1 (uvicorn) serving `app`: webhook receivers and the Dapr stand-in."""

    def __init__(self, app: Starlette, port: int | None = None) -> None:
        self.port = port or free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )

    async def __aenter__(self) -> LocalServer:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()  # raises why it did not start
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await self.task


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        received.append({"headers": dict(request.headers), "body": await request.json()})
        return Response(status_code=204)

    async with LocalServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as server:
        yield f"http://127.0.0.1:{server.port}/hook", received


async def test_a_webhook_subscribed_to_reminders_receives_them_through_the_webhook_path(
    alice: Api, function_clients: dict[str, httpx.AsyncClient], receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = receiver
    created = await alice.post("/api/webhooks", json={"url": url, "event_types": [REMINDER_DUE]})
    assert created.status_code == 201, created.text
    try:
        [event] = await reminder_events(alice, "Hooked")
        headers, body = to_binary(event)
        response = await function_clients["deliver-webhooks"].post("/", headers=headers, content=body)
        assert response.status_code == 200, response.text
        await background_deliveries_done()
        [delivery] = received
        assert delivery["body"] == {**event.get_attributes(), "data": event.get_data()}
        assert delivery["body"]["type"] == REMINDER_DUE
        assert delivery["body"]["data"]["task"]["title"] == "Hooked"
        assert delivery["headers"]["x-todo-signature"].startswith("sha256=")
    finally:
        await alice.delete(f"/api/webhooks/{created.json()['id']}")


# --- email through the Dapr SMTP binding -------------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler keeping what it accepts; it refuses the next `refuse` messages (451)."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.refuse = 0

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        if self.refuse:
            self.refuse -= 1
            return "451 4.3.0 Mailbox busy, try again later"
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        return [
            message_from_bytes(bytes(e.original_content or b""), _class=EmailMessage, policy=policy.default)
            for e in self.envelopes
        ]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    """A local SMTP server (aiosmtpd, in its own thread) and its port."""
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def dapr_problem(status: int, code: str, message: str) -> Response:
    return Response(
        json.dumps({"errorCode": code, "message": message}), status, media_type="application/json"
    )


class DaprSidecar:
    """A stand-in for the Dapr sidecar's HTTP API with one component of type bindings.smtp, `name`, whose
    own metadata points at `smtp_port`. It checks a binding request as daprd does (metadata is a map of
    strings; the operation must be one the binding has) and then does what components-contrib's smtp
    binding does: request metadata emailFrom, emailTo, emailCC, emailBCC, subject and priority override the
    component's; emailFrom, emailTo and subject are required; emailTo is split on ";"; the data, a JSON
    string unquoted, is the text/html body. It records every request's raw body."""

    OVERRIDES = ("emailFrom", "emailTo", "emailCC", "emailBCC", "subject", "priority")

    def __init__(self, name: str, smtp_port: int, **component: str) -> None:
        self.name, self.smtp_port, self.component = name, smtp_port, component
        self.requests: list[tuple[str, bytes]] = []
        self.app = Starlette(
            routes=[
                Route("/v1.0/healthz/outbound", lambda _: Response(status_code=204)),
                Route("/v1.0/bindings/{name}", self.invoke, methods=["POST", "PUT"]),
            ]
        )

    async def invoke(self, request: Request) -> Response:
        name, raw = request.path_params["name"], await request.body()
        self.requests.append((name, raw))
        if name != self.name:
            return dapr_problem(500, "ERR_INVOKE_OUTPUT_BINDING", f"couldn't find output binding {name}")
        try:
            body = json.loads(raw)
            metadata = body.get("metadata") or {}
            if not isinstance(body.get("operation"), str) or not all(
                isinstance(v, str) for v in metadata.values()
            ):
                raise ValueError("operation must be a string and metadata a map of strings")
        except (ValueError, AttributeError) as exc:
            return dapr_problem(400, "ERR_MALFORMED_REQUEST", str(exc))
        if body["operation"] != "create":
            return dapr_problem(
                500, "ERR_INVOKE_OUTPUT_BINDING", f"operation {body['operation']} not supported"
            )
        merged = {**self.component, **{k: metadata[k] for k in self.OVERRIDES if metadata.get(k)}}
        for required in ("emailFrom", "emailTo", "subject"):
            if not merged.get(required):
                return dapr_problem(
                    500, "ERR_INVOKE_OUTPUT_BINDING", f"smtp binding error: {required} not supplied"
                )
        data = body.get("data")
        message = EmailMessage()
        message["From"] = merged["emailFrom"]
        message["To"] = ", ".join(merged["emailTo"].split(";"))
        message["Subject"] = merged["subject"]
        message["X-priority"] = merged.get("priority", "3")
        message.set_content(data if isinstance(data, str) else json.dumps(data), subtype="html")

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=5) as smtp:
                smtp.send_message(message, merged["emailFrom"], merged["emailTo"].split(";"))

        try:
            await asyncio.to_thread(send)
        except (smtplib.SMTPException, OSError) as exc:
            return dapr_problem(500, "ERR_INVOKE_OUTPUT_BINDING", f"sending email failed: {exc!r}")
        return Response(status_code=204)  # the smtp binding returns no data


@pytest.fixture
async def sidecar(mailbox: tuple[Mailbox, int]) -> AsyncIterator[tuple[DaprSidecar, int]]:
    stand_in = DaprSidecar("email-smtp", mailbox[1])
    async with LocalServer(stand_in.app) as server:
        yield stand_in, server.port


@pytest.fixture
def email_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Settings for the email channel in this test. The channel is decided afresh from them, in a cache
    of the test's own: the process's cached channel (from the real settings) is back after the test."""

    def use(**changes: Any) -> None:
        settings = get_settings().model_copy(update=changes)
        monkeypatch.setattr(todo_email, "get_settings", lambda: settings)
        monkeypatch.setattr(todo_email, "_channel", [])

    return use


SENDER = "reminders@todo.test"


async def test_a_reminder_email_goes_through_the_dapr_smtp_binding_and_arrives_once(
    new_user: Callable[..., Api],
    deliver: Callable[..., Any],
    mailbox: tuple[Mailbox, int],
    sidecar: tuple[DaprSidecar, int],
    email_settings: Callable[..., None],
) -> None:
    stand_in, port = sidecar
    email_settings(notification_email="dapr", dapr_http_port=port, notification_email_from=SENDER)
    ada = new_user(f"ada-{uuid.uuid4().hex[:8]}@example.test")
    [event] = await reminder_events(ada, "File <taxes> & receipts")

    assert (await deliver(event)).status_code == 200
    assert (await deliver(event, "structured")).status_code == 200  # redelivered: no second email

    [(binding, raw)] = stand_in.requests
    request = json.loads(raw)
    assert binding == "email-smtp"
    assert request == {
        "operation": "create",
        "data": request["data"],
        "metadata": {
            "emailTo": ada.user_id,
            "subject": "Reminder: File <taxes> & receipts",
            "emailFrom": SENDER,
        },
    }
    assert "<strong>File &lt;taxes&gt; &amp; receipts</strong>" in request["data"]

    box = mailbox[0]
    [envelope] = box.envelopes
    assert (envelope.mail_from, envelope.rcpt_tos) == (SENDER, [ada.user_id])
    [message] = box.messages()
    assert (message["From"], message["To"], message["Subject"]) == (
        SENDER,
        ada.user_id,
        "Reminder: File <taxes> & receipts",
    )
    assert message.get_content_type() == "text/html"
    content = message.get_content()
    assert "File &lt;taxes&gt; &amp; receipts" in content and "(in 30 minutes)" in content
    assert len(await notifications(ada)) == 1


async def test_an_email_failure_keeps_the_notification_and_its_retry_sends_only_the_email(
    new_user: Callable[..., Api],
    deliver: Callable[..., Any],
    mailbox: tuple[Mailbox, int],
    sidecar: tuple[DaprSidecar, int],
    email_settings: Callable[..., None],
) -> None:
    email_settings(notification_email="dapr", dapr_http_port=sidecar[1], notification_email_from=SENDER)
    grace = new_user(f"grace-{uuid.uuid4().hex[:8]}@example.test")
    [event] = await reminder_events(grace, "Renew the passport")
    box = mailbox[0]
    box.refuse = 1  # the SMTP server is busy once

    failed = await deliver(event)
    assert failed.status_code == 503  # retried by the broker's delivery
    assert [n["title"] for n in await notifications(grace)] == ["Renew the passport"]  # kept
    assert box.envelopes == []

    assert (await deliver(event)).status_code == 200  # the retry
    assert (await deliver(event)).status_code == 200  # and a duplicate of it
    assert len(box.envelopes) == 1
    assert len(await notifications(grace)) == 1


async def test_with_email_off_deliver_notification_says_so_once_and_sends_nothing(
    new_user: Callable[..., Api],
    deliver: Callable[..., Any],
    mailbox: tuple[Mailbox, int],
    sidecar: tuple[DaprSidecar, int],
    email_settings: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    email_settings(notification_email="off", dapr_http_port=sidecar[1], notification_email_from=SENDER)
    ada = new_user(f"ada-{uuid.uuid4().hex[:8]}@example.test")  # an address, were email on
    events = await reminder_events(ada, "One", "Two")
    with caplog.at_level(logging.INFO, logger="todo_backend.email"):
        for event in events:
            assert (await deliver(event)).status_code == 200
    said = [r.getMessage() for r in caplog.records if r.name == "todo_backend.email"]
    assert said == ["reminder emails are off (NOTIFICATION_EMAIL=off): notifications are in-app only"]
    assert sidecar[0].requests == [] and mailbox[0].envelopes == []
    assert len(await notifications(ada)) == 2


async def emails_tracked(sql: Sql, event: CloudEvent) -> int:
    """Tracking rows of the reminder email for `event`: written only once it was sent."""
    return int(
        await sql.pool.fetchval(
            "SELECT count(*) FROM processed_event WHERE consumer = $1 AND event_id = $2",
            "deliver-notification:email",
            uuid.UUID(event["id"]),
        )
    )


async def test_a_sidecar_that_comes_up_late_gets_the_email_on_the_retry_never_a_silent_skip(
    new_user: Callable[..., Api],
    deliver: Callable[..., Any],
    mailbox: tuple[Mailbox, int],
    email_settings: Callable[..., None],
    sql: Sql,
) -> None:
    # A pod woken from zero: the first reminder arrives before its sidecar listens.
    port = free_port()
    email_settings(notification_email="dapr", dapr_http_port=port, notification_email_from=SENDER)
    ada = new_user(f"ada-{uuid.uuid4().hex[:8]}@example.test")
    [event] = await reminder_events(ada, "Call the dentist")

    assert (await deliver(event)).status_code == 503  # retried by the dispatcher, not acknowledged
    assert len(await notifications(ada)) == 1
    assert await emails_tracked(sql, event) == 0

    stand_in = DaprSidecar("email-smtp", mailbox[1])
    async with LocalServer(stand_in.app, port):  # the sidecar is up now
        assert (await deliver(event)).status_code == 200  # the retry
        assert (await deliver(event)).status_code == 200  # and a duplicate of it
    assert len(mailbox[0].envelopes) == 1 and len(stand_in.requests) == 1
    assert await emails_tracked(sql, event) == 1
    assert len(await notifications(ada)) == 1


async def test_a_sidecar_that_never_comes_up_fails_every_retry_and_the_dispatcher_dead_letters_it(
    new_user: Callable[..., Api],
    function_clients: dict[str, httpx.AsyncClient],
    email_settings: Callable[..., None],
    sql: Sql,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    email_settings(notification_email="dapr", dapr_http_port=free_port(), notification_email_from=SENDER)
    retries = 3
    monkeypatch.setattr(dispatcher, "DELIVERY", Delivery(retries=retries, backoff_seconds=0.01))
    ada = new_user(f"ada-{uuid.uuid4().hex[:8]}@example.test")
    [event] = await reminder_events(ada, "Nobody will tell you")
    message = kafka_binary(event, key_mapper=lambda e: e["partitionkey"].encode())
    record = SimpleNamespace(headers=list(message.headers.items()), key=message.key, value=message.value)

    with caplog.at_level(logging.WARNING, logger="todo_backend.notifications"):
        outcome = await dispatcher.post_event(function_clients["deliver-notification"], "/", record)
    assert (outcome.delivered, outcome.status) == (False, 503)  # so it goes to the dead-letter topic
    failed = [r for r in caplog.records if r.getMessage().startswith("reminder email for event")]
    assert len(failed) == retries + 1  # every delivery tried to send; none was skipped
    assert await emails_tracked(sql, event) == 0
    assert len(await notifications(ada)) == 1


class HeldSidecar(DaprSidecar):
    """The stand-in sidecar, holding each binding request until `release` is set."""

    def __init__(self, name: str, smtp_port: int) -> None:
        super().__init__(name, smtp_port)
        self.holding, self.release = asyncio.Event(), asyncio.Event()

    async def invoke(self, request: Request) -> Response:
        self.holding.set()
        await self.release.wait()
        return await super().invoke(request)


async def test_the_email_is_sent_with_no_transaction_open_and_tracked_after_the_send(
    new_user: Callable[..., Api],
    deliver: Callable[..., Any],
    mailbox: tuple[Mailbox, int],
    email_settings: Callable[..., None],
    sql: Sql,
) -> None:
    stand_in = HeldSidecar("email-smtp", mailbox[1])
    async with LocalServer(stand_in.app) as server:
        email_settings(notification_email="dapr", dapr_http_port=server.port, notification_email_from=SENDER)
        ada = new_user(f"ada-{uuid.uuid4().hex[:8]}@example.test")
        [event] = await reminder_events(ada, "Hold the line")
        delivery = asyncio.create_task(deliver(event))
        async with asyncio.timeout(10):
            await stand_in.holding.wait()  # the send is in flight
        pinned = get_engine().pool.checkedout()
        tracked_during_send = await emails_tracked(sql, event)
        stand_in.release.set()
        assert (await delivery).status_code == 200
    assert pinned == 0  # no pool connection (and so no transaction) held across the sidecar call
    assert tracked_during_send == 0
    assert await emails_tracked(sql, event) == 1
    assert len(mailbox[0].envelopes) == 1


async def test_a_user_whose_id_is_not_an_address_gets_the_notification_but_no_email(
    alice: Api,
    deliver: Callable[..., Any],
    mailbox: tuple[Mailbox, int],
    sidecar: tuple[DaprSidecar, int],
    email_settings: Callable[..., None],
) -> None:
    email_settings(notification_email="dapr", dapr_http_port=sidecar[1], notification_email_from=SENDER)
    [event] = await reminder_events(alice, "No address for me")
    assert (await deliver(event)).status_code == 200
    assert sidecar[0].requests == [] and mailbox[0].envelopes == []
    assert len(await notifications(alice)) == 1


# --- in a team: reminders to the assignee, assignments, memberships -----------------------------------


async def stored_events(type_: str, subject: str) -> list[CloudEvent]:
    """The CloudEvents of `type_` about `subject` the outbox holds, as the broker would carry them."""
    async with get_sessionmaker()() as session:
        stmt = select(TaskEvent).where(TaskEvent.type == type_, TaskEvent.subject == subject)
        rows = list((await session.execute(stmt.order_by(TaskEvent.sequence))).scalars())
    return [CloudEvent(payload, payload.pop("data")) for payload in map(to_cloudevent_json, rows)]


async def team_project(owner: Api, *members: Api) -> str:
    project = (await owner.post("/api/projects", json={"name": "Garden"})).json()["id"]
    for member in members:
        body = {"user_id": member.user_id, "role": "editor"}
        assert (await owner.post(f"/api/projects/{project}/members", json=body)).status_code == 201
    return str(project)


async def test_a_project_tasks_reminder_and_its_email_go_to_its_assignee_else_its_creator(
    new_user: Callable[..., Api],
    deliver: Callable[..., Any],
    mailbox: tuple[Mailbox, int],
    sidecar: tuple[DaprSidecar, int],
    email_settings: Callable[..., None],
) -> None:
    email_settings(notification_email="dapr", dapr_http_port=sidecar[1], notification_email_from=SENDER)
    ada, bea = (new_user(f"{name}-{uuid.uuid4().hex[:8]}@example.test") for name in ("ada", "bea"))
    project = await team_project(ada, bea)
    due = (utcnow() + timedelta(minutes=30)).isoformat()
    common = {"due_date": due, "remind_before_minutes": 60, "project_id": project}
    assigned = await bea.create(title="Prune", assignee_id=bea.user_id, **common)
    unassigned = await bea.create(title="Weed", **common)  # bea creates it: she is reminded
    await check_due_tasks(CheckDueTasks(batch_size=500), unit_of_work("check-due-tasks"))
    await ada.patch(f"/api/tasks/{assigned['id']}", json={"assignee_id": ada.user_id})  # before delivery

    for task in (assigned, unassigned):
        [event] = await stored_events(REMINDER_DUE, task["id"])
        assert (await deliver(event)).status_code == 200

    assert [n["title"] for n in await notifications(ada) if n["kind"] == "reminder"] == ["Prune"]
    assert [n["title"] for n in await notifications(bea) if n["kind"] == "reminder"] == ["Weed"]
    assert sorted(e.rcpt_tos[0] for e in mailbox[0].envelopes) == sorted([ada.user_id, bea.user_id])


async def test_being_assigned_or_added_notifies_that_user_once_and_nobody_of_their_own_doing(
    alice: Api, bob: Api, deliver: Callable[..., Any]
) -> None:
    project = await team_project(alice, bob)
    mine = await alice.create(title="mine", project_id=project, assignee_id=alice.user_id)
    theirs = await alice.create(title="for bob", project_id=project)
    await alice.patch(f"/api/tasks/{theirs['id']}", json={"assignee_id": bob.user_id})
    await alice.patch(f"/api/tasks/{theirs['id']}", json={"title": "still for bob"})

    for type_, subject in (
        ("dev.todo.project-member.added", project),
        ("dev.todo.task.created", mine["id"]),
        ("dev.todo.task.created", theirs["id"]),
        ("dev.todo.task.updated", theirs["id"]),
    ):
        for event in await stored_events(type_, subject):
            assert (await deliver(event)).status_code == 200
            assert (await deliver(event, "structured")).status_code == 200  # redelivered: nothing more

    got = [(n["kind"], n["title"], n["project_id"], n["task_id"]) for n in await notifications(bob)]
    assert sorted(got) == [
        ("added_to_project", "Garden", project, None),
        ("assigned", "still for bob", project, theirs["id"]),
    ]
    assert await notifications(alice) == []  # her own project, her own assignment


async def test_an_assignment_or_membership_undone_before_its_event_arrives_notifies_nobody(
    alice: Api, bob: Api, new_user: Callable[..., Api], deliver: Callable[..., Any]
) -> None:
    carol = new_user()
    project = await team_project(alice, bob, carol)
    task = await alice.create(title="t", project_id=project, assignee_id=bob.user_id)
    await alice.patch(f"/api/tasks/{task['id']}", json={"assignee_id": carol.user_id})
    await alice.delete(f"/api/projects/{project}/members/{bob.user_id}")

    for type_ in ("dev.todo.task.created", "dev.todo.task.updated", "dev.todo.project-member.added"):
        for event in await stored_events(type_, task["id"] if "task" in type_ else project):
            assert (await deliver(event)).status_code == 200

    assert await notifications(bob) == []
    assert sorted(n["kind"] for n in await notifications(carol)) == ["added_to_project", "assigned"]


async def test_events_written_before_a_task_moved_are_still_taken(
    alice: Api, bob: Api, deliver: Callable[..., Any]
) -> None:
    first, second = await team_project(alice, bob), await team_project(alice, bob)
    task = await alice.create(title="moves", project_id=first, assignee_id=bob.user_id)
    assert (await alice.patch(f"/api/tasks/{task['id']}", json={"project_id": second})).status_code == 200

    [created] = await stored_events("dev.todo.task.created", task["id"])
    assert (await deliver(created)).status_code == 200

    [notice] = [n for n in await notifications(bob) if n["kind"] == "assigned"]
    assert (notice["task_id"], notice["project_id"]) == (task["id"], second)


async def test_a_reminder_of_a_project_task_reaches_no_one_who_left_the_project(
    alice: Api, bob: Api, deliver: Callable[..., Any]
) -> None:
    project = await team_project(alice, bob)
    due = (utcnow() + timedelta(minutes=30)).isoformat()
    task = await bob.create(title="secret plan", due_date=due, remind_before_minutes=60, project_id=project)
    await check_due_tasks(CheckDueTasks(batch_size=500), unit_of_work("check-due-tasks"))
    assert (await bob.delete(f"/api/projects/{project}/members/{bob.user_id}")).status_code == 204

    [event] = await stored_events(REMINDER_DUE, task["id"])
    assert (await deliver(event)).status_code == 200

    assert [n for n in await notifications(bob) if n["kind"] == "reminder"] == []


async def test_a_reminder_and_its_email_are_written_in_the_recipients_zone_and_language(
    new_user: Callable[..., Api],
    deliver: Callable[..., Any],
    mailbox: tuple[Mailbox, int],
    sidecar: tuple[DaprSidecar, int],
    email_settings: Callable[..., None],
) -> None:
    email_settings(notification_email="dapr", dapr_http_port=sidecar[1], notification_email_from=SENDER)
    ada = new_user(f"ada-{uuid.uuid4().hex[:8]}@example.test")
    settings = {"timezone": "Europe/Berlin", "locale": "de"}
    assert (await ada.put("/api/me/settings", json=settings)).status_code == 200
    [event] = await reminder_events(ada, "Steuer")  # due in 30 minutes
    due = datetime.fromisoformat(event.get_data()["due_at"]).astimezone(ZoneInfo("Europe/Berlin"))

    assert (await deliver(event)).status_code == 200

    [notification] = await notifications(ada)
    # CLDR's German, on Berlin's clock: "Fällig Di., 15. Jan. 2030, 18:30 MEZ (in 30 Minuten)".
    body = notification["body"]
    zone = "MESZ" if due.dst() else "MEZ"
    assert body.startswith("Fällig ") and body.endswith(f"{due:%H:%M} {zone} (in 30 Minuten)"), body
    [message] = mailbox[0].messages()
    assert message["Subject"] == "Erinnerung: Steuer"
    assert f"{due:%H:%M} {zone}" in message.get_content()


# --- as Knative runs them: each in its own process ----------------------------------------------------


@pytest.fixture(scope="module")
def processes(function_process: Callable[[str], str]) -> Iterator[dict[str, str]]:
    names = ["check-due-tasks", "deliver-notification", "list-notifications", "mark-notification-read"]
    with ThreadPoolExecutor(len(names)) as pool:  # started concurrently: each takes about a second
        yield dict(zip(names, pool.map(function_process, names), strict=True))


async def test_the_four_functions_work_as_their_own_processes_over_http(
    processes: dict[str, str], alice: Api, jwt_secret: str
) -> None:
    task = await alice.create(title="Over the wire", due_date=(utcnow() + timedelta(minutes=10)).isoformat())
    auth = {"Authorization": f"Bearer {mint(jwt_secret, alice.user_id)}"}
    async with httpx.AsyncClient(timeout=10) as client:
        ticked = await client.post(processes["check-due-tasks"], headers={"content-type": "application/json"})
        assert ticked.status_code == 200 and ticked.json()["reminded"] >= 1, ticked.text

        async with get_sessionmaker()() as session:
            stmt = select(TaskEvent).where(TaskEvent.type == REMINDER_DUE, TaskEvent.subject == task["id"])
            row = (await session.execute(stmt)).scalar_one()
        payload = to_cloudevent_json(row)
        headers, body = to_binary(CloudEvent(payload, payload.pop("data")))
        for _ in range(2):
            delivered = await client.post(processes["deliver-notification"], headers=headers, content=body)
            assert delivered.status_code == 200, delivered.text

        listed = await client.get(f"{processes['list-notifications']}/api/notifications", headers=auth)
        assert listed.status_code == 200, listed.text
        [notification] = listed.json()["items"]
        assert (notification["title"], notification["due_at"]) == ("Over the wire", row.data["due_at"])

        read_url = f"{processes['mark-notification-read']}/api/notifications/{notification['id']}/read"
        read = await client.post(read_url, headers=auth)
        assert read.status_code == 200 and read.json()["read_at"] is not None, read.text
        assert (await client.post(read_url)).status_code == 401  # no token


# --- snooze -------------------------------------------------------------------------------------------


async def snooze(user: Api, notification: dict[str, Any], **body: Any) -> httpx.Response:
    return await user.post(f"/api/notifications/{notification['id']}/snooze", json=body)


async def test_a_snoozed_reminder_fires_again_once_at_the_snooze_and_snoozing_again_moves_it(
    alice: Api, deliver: Callable[..., Any], sql: Sql
) -> None:
    [event] = await reminder_events(alice, "Call back")
    assert (await deliver(event)).status_code == 200
    [notification] = await notifications(alice)
    task_id = notification["task_id"]

    first = await snooze(alice, notification, minutes=5)
    assert first.status_code == 200, first.text
    assert first.json()["read_at"] is not None
    until = (utcnow() + timedelta(minutes=2)).replace(microsecond=0)
    again = await snooze(alice, notification, until=until.isoformat())
    assert again.status_code == 200, again.text
    assert (await alice.get(f"/api/tasks/{task_id}")).json()["reminded_at"] is None

    for minutes in (1, 3, 3, 6):  # not yet; due (the second snooze); done; the first snooze is gone
        await check_due_tasks(
            CheckDueTasks(batch_size=500, now=utcnow() + timedelta(minutes=minutes)), unit_of_work("c")
        )
    reminders = await stored_events(REMINDER_DUE, task_id)
    assert len(reminders) == 2  # the first, and the snoozed one: once
    snoozed = reminders[1].get_data()
    assert snoozed is not None and datetime.fromisoformat(snoozed["remind_at"]) == until
    history = await sql.events(task_id)
    assert [r["type"] for r in history].count("dev.todo.task.updated") == 2  # one per snooze


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"minutes": 0},
        {"minutes": 10_081},
        {"minutes": 5, "until": "2030-01-01T00:00:00Z"},
        {"until": "2000-01-01T00:00:00Z"},
        {"until": "2999-01-01T00:00:00Z"},
        {"until": "2030-01-01T00:00:00"},  # no offset
        {"minutes": "soon"},
    ],
)
async def test_a_bad_snooze_is_a_422_and_changes_nothing(
    alice: Api, deliver: Callable[..., Any], body: dict[str, Any]
) -> None:
    [event] = await reminder_events(alice, "Once")
    await deliver(event)
    [notification] = await notifications(alice)

    assert_problem(await snooze(alice, notification, **body), 422)

    assert (await alice.get(f"/api/tasks/{notification['task_id']}")).json()["reminded_at"] is not None
    assert (await notifications(alice))[0]["read_at"] is None


async def test_only_ones_own_reminder_of_an_open_task_can_be_snoozed(
    alice: Api, bob: Api, deliver: Callable[..., Any]
) -> None:
    project = await team_project(alice, bob)
    for event in await stored_events("dev.todo.project-member.added", project):
        await deliver(event)
    [added] = await notifications(bob)
    assert_problem(await snooze(bob, added, minutes=5), 422)  # not a reminder
    [event] = await reminder_events(alice, "Mine")
    await deliver(event)
    [reminder] = await notifications(alice)
    assert_problem(await snooze(bob, reminder, minutes=5), 404)  # not bob's
    await alice.post(f"/api/tasks/{reminder['task_id']}/complete")
    assert_problem(await snooze(alice, reminder, minutes=5), 409)  # nothing left to remind of
