"""CloudEvent consumers: the shared wrapping of every event function.

An inbound CloudEvent is read once, by type, into the event `events.py` emits (`receive`); `consume` then
runs a handler on it once per consumer, its effect and tracking row in one transaction, after the one
ownership check every consumer shares.

Answers follow Knative's dispatcher: 2xx done; 5xx (database down, timeout, a bug) is retried with
backoff; 4xx (PoisonEvent: unknown type, invalid data, identity that does not hold) is not retried and
goes to the dead-letter sink. The event entries turn a domain error into that answer. Nothing is swallowed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from cloudevents.abstract import AnyCloudEvent
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from todo_backend.bootstrap import collecting_commits, publish_now, unit_of_work
from todo_backend.catalog import Function
from todo_backend.errors import PoisonEvent
from todo_backend.events import Event, ProjectMemberAdded, from_cloudevent, owned_resource
from todo_backend.metrics import observe_event
from todo_backend.models import ProcessedEvent, Task, TaskEvent
from todo_backend.uow import UnitOfWork

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class InboundEvent:
    """A received CloudEvent: its envelope, its data as received, and the event that data carries."""

    id: uuid.UUID
    type: str
    user_id: str
    time: datetime | None
    attributes: dict[str, Any]
    data: dict[str, Any]
    event: Event

    @classmethod
    def parse(cls, event: AnyCloudEvent) -> InboundEvent:
        attrs = dict(event.get_attributes())
        try:
            event_id = uuid.UUID(str(attrs["id"]))
            user_id = attrs["userid"]
            time = datetime.fromisoformat(attrs["time"]) if attrs.get("time") else None
        except (KeyError, ValueError) as exc:
            raise PoisonEvent(f"malformed event attributes: {exc!r}") from exc
        data = event.get_data()
        if not isinstance(user_id, str) or not user_id or not isinstance(data, dict):
            raise PoisonEvent("the event needs a userid extension and a JSON object as data")
        typed = from_cloudevent(str(attrs["type"]), user_id, data)
        return cls(event_id, attrs["type"], user_id, time, attrs, data, typed)


def receive(consumer: Function, event: AnyCloudEvent) -> InboundEvent:
    """`event` read for `consumer`: a PoisonEvent if malformed or of a type the consumer does not take."""
    try:
        inbound = InboundEvent.parse(event)
        if inbound.type not in consumer.event_types:
            raise PoisonEvent(f"{consumer.name} does not handle {inbound.type}")
    except PoisonEvent as exc:
        _rejected(consumer.name, event.get("id"), str(event.get("type")), exc)
        raise
    return inbound


def _rejected(consumer: str, event_id: object, event_type: str, exc: PoisonEvent) -> None:
    log.error("%s: rejecting event %s: %s", consumer, event_id, exc)
    observe_event(consumer, event_type, "rejected")


async def _check_owner(uow: UnitOfWork, event: InboundEvent) -> None:
    """The task or series an event names must, while it exists, be its userid's; the event of a
    project's task (wherever the task was when it was written: tasks move) or of its members must be
    one the outbox holds, about that subject, with that userid (the member who acted, who may have left
    since): identity in an event is never trusted. One deleted since passes: the event's own copy is
    all there is."""
    if isinstance(event.event, ProjectMemberAdded):
        return await written(uow, event, str(event.event.project_id))
    resource = owned_resource(event.event)
    kind = type(resource)
    if kind is Task:
        project = await uow.session.scalar(select(Task.project_id).where(Task.id == resource.id))
        if project is not None:
            return await written(uow, event, str(resource.id))
    owner = await uow.session.scalar(select(kind.user_id).where(kind.id == resource.id))
    if owner is not None and owner != event.user_id:
        what = kind.__tablename__.replace("_", " ")
        raise PoisonEvent(f"{what} {resource.id} does not belong to the event's user")


async def written(uow: UnitOfWork, event: InboundEvent, subject: str) -> None:
    """A PoisonEvent unless this system wrote the event so: that id, about that subject, for that
    userid."""
    stored = select(TaskEvent.sequence).where(
        TaskEvent.id == event.id, TaskEvent.subject == subject, TaskEvent.user_id == event.user_id
    )
    if await uow.session.scalar(stored) is None:
        raise PoisonEvent(f"no event {event.id} about {subject} was written for its user")


async def _first_delivery(uow: UnitOfWork, consumer: str, event_id: uuid.UUID) -> bool:
    """Record (consumer, event id) in this transaction; False if this consumer already handled it."""
    stmt = (
        insert(ProcessedEvent)
        .values(consumer=consumer, event_id=event_id)
        .on_conflict_do_nothing()
        .returning(ProcessedEvent.event_id)
    )
    return (await uow.session.execute(stmt)).first() is not None


async def consume(
    consumer: str,
    event: InboundEvent,
    handler: Callable[[InboundEvent, UnitOfWork], Awaitable[T]],
) -> T | None:
    """Run `handler` once per event id for `consumer`, its effect and tracking row in one transaction.

    The handler works inside the open unit of work and does not commit; its result is returned after
    the commit (None for a duplicate delivery, acknowledged without effect).
    """
    try:
        async with collecting_commits() as keys, unit_of_work(consumer) as uow:
            if not await _first_delivery(uow, consumer, event.id):
                log.info("%s: duplicate delivery of %s acknowledged", consumer, event.id)
                observe_event(consumer, event.type, "duplicate")
                return None
            await _check_owner(uow, event)
            result = await handler(event, uow)
            await uow.commit()
    except PoisonEvent as exc:
        _rejected(consumer, event.id, event.type, exc)
        raise
    except Exception:
        observe_event(consumer, event.type, "failed")  # answered 5xx: the dispatcher retries
        raise
    observe_event(consumer, event.type, "handled")
    # Before the ack, not after it as HTTP does: the ack is this event's response, and once it is sent
    # the dispatcher moves on and Knative may scale the pod away, so a publish left to run after it
    # could be lost to relay-outbox's next minute. No user waits on an ack, and the unit of work is
    # closed by now: the wait holds no transaction.
    await publish_now(keys)
    return result
