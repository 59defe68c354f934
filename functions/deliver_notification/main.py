"""deliver-notification: a reminder, an assignment (task.created or task.updated naming an assignee)
or a new membership becomes at most one in-app notification; a reminder, where the email channel is on,
also one email through the Dapr SMTP binding, to whom the notification went.

The notification and its tracking row commit before any email is tried, so an email failure (answered
503, so the event is retried) never takes the notification back, and its retry never duplicates it.
The email is sent with no transaction open; its own tracking row is written after the send.
"""

import functions_framework.aio
from cloudevents.http import CloudEvent

from todo_backend.catalog import by_name
from todo_backend.consumers import consume, receive
from todo_backend.email import email_channel
from todo_backend.events import ReminderDue
from todo_backend.http import event_function
from todo_backend.notifications import email_reminder, record_notification

CONSUMER = by_name("deliver-notification")


@functions_framework.aio.cloud_event
@event_function
async def deliver_notification(event: CloudEvent) -> None:
    inbound = receive(CONSUMER, event)
    await consume(CONSUMER.name, inbound, record_notification)
    mailer = email_channel()  # from the settings, logged once per process
    if mailer is not None and isinstance(inbound.event, ReminderDue):
        await email_reminder(CONSUMER.name, inbound, mailer)  # RetryLater: 503, so it is redelivered
