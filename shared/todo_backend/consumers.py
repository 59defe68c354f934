"""CloudEvent consumers and cron ticks: the shared wrapping of every event and cron function.

Response codes follow Knative's dispatcher: 2xx done; 5xx (database down, timeout, a bug) is retried
with backoff; 4xx for an event that can never succeed (unknown type, invalid data, identity that does
not hold) is not retried and goes to the dead-letter sink. Nothing is swallowed.
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
from starlette.exceptions import HTTPException

from todo_backend.bootstrap import collecting_commits, publish_now, unit_of_work
from todo_backend.metrics import observe_event
from todo_backend.models import ProcessedEvent, Task
from todo_backend.uow import UnitOfWork

log = logging.getLogger(__name__)

T = TypeVar("T")


class PoisonEvent(Exception):
    """The event can never be handled: answered 422, so it is dead-lettered, not retried."""


@dataclass(frozen=True)
class InboundEvent:
    id: uuid.UUID
    type: str
    source: str
    subject: str | None
    user_id: str
    time: datetime | None
    data: dict[str, Any]
    attributes: dict[str, Any]

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
        return cls(event_id, attrs["type"], attrs["source"], attrs.get("subject"), user_id, time, data, attrs)


async def check_task_owner(uow: UnitOfWork, task_id: uuid.UUID, user_id: str) -> None:
    """The task an event names must, while it exists, be its userid's: identity in an event is never
    trusted. A task deleted since passes: the event's own copy is all there is."""
    owner = await uow.session.scalar(select(Task.user_id).where(Task.id == task_id))
    if owner is not None and owner != user_id:
        raise PoisonEvent(f"task {task_id} does not belong to the event's user")


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
    types: tuple[str, ...],
    event: AnyCloudEvent,
    handler: Callable[[InboundEvent, UnitOfWork], Awaitable[T]],
) -> T | None:
    """Run `handler` once per event id for `consumer`, its effect and tracking row in one transaction.

    The handler works inside the open unit of work and does not commit; its result is returned after
    the commit (None for a duplicate delivery, acknowledged without effect).
    """
    event_type = str(event.get("type"))
    try:
        inbound = InboundEvent.parse(event)
        if inbound.type not in types:
            raise PoisonEvent(f"{consumer} does not handle {inbound.type}")
        async with collecting_commits() as rows, unit_of_work(consumer) as uow:
            if not await _first_delivery(uow, consumer, inbound.id):
                log.info("%s: duplicate delivery of %s acknowledged", consumer, inbound.id)
                observe_event(consumer, event_type, "duplicate")
                return None
            result = await handler(inbound, uow)
            await uow.commit()
    except PoisonEvent as exc:
        log.error("%s: rejecting event %s: %s", consumer, event.get("id"), exc)
        observe_event(consumer, event_type, "rejected")
        raise HTTPException(422, str(exc)) from exc
    except Exception:
        observe_event(consumer, event_type, "failed")  # answered 5xx: the dispatcher retries
        raise
    observe_event(consumer, event_type, "handled")
    # Before the ack, not after it as HTTP does: the ack is this event's response, and once it is sent
    # the dispatcher moves on and Knative may scale the pod away, so a publish left to run after it
    # could be lost to relay-outbox's next minute. No user waits on an ack, and the unit of work is
    # closed by now: the wait holds no transaction.
    await publish_now(rows)
    return result
