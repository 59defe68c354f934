"""schedule-next-occurrence: when the current occurrence of a completion-anchored series is completed
(by any route), create the next, due at the first schedule time after the completion.

Idempotent per event id (the consumer's tracking row commits with the new occurrence).
"""

import functions_framework.aio
from cloudevents.http import CloudEvent

from todo_backend.catalog import by_name
from todo_backend.consumers import consume, receive
from todo_backend.http import event_function
from todo_backend.recurring import schedule_next_occurrence as handle

CONSUMER = by_name("schedule-next-occurrence")


@functions_framework.aio.cloud_event
@event_function
async def schedule_next_occurrence(event: CloudEvent) -> None:
    await consume(CONSUMER.name, receive(CONSUMER, event), handle)
