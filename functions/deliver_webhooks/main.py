"""deliver-webhooks: a task event becomes one delivery row per subscription of its user, then is POSTed.

The rows and the consumer's tracking row commit together (a redelivered event queues nothing); the
first attempts start right after, without holding up the event's acknowledgement.
"""

import functions_framework.aio
from cloudevents.http import CloudEvent

from todo_backend.catalog import by_name
from todo_backend.consumers import consume, receive
from todo_backend.db import get_sessionmaker
from todo_backend.http import event_function
from todo_backend.webhooks.delivery import deliver_in_background, queue_deliveries

CONSUMER = by_name("deliver-webhooks")


@functions_framework.aio.cloud_event
@event_function
async def deliver_webhooks(event: CloudEvent) -> None:
    queued = await consume(CONSUMER.name, receive(CONSUMER, event), queue_deliveries)
    if queued:
        deliver_in_background(get_sessionmaker(), queued)
