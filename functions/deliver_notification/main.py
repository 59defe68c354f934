"""deliver-notification: a reminder.due event becomes one in-app notification, and, where the email
channel is on, one email through the Dapr SMTP binding.

The notification and its tracking row commit before any email is tried, so an email failure (answered
503, so the event is retried) never takes the notification back, and its retry never duplicates it.
The email is sent with no transaction open; its own tracking row is written after the send.
"""

import functions_framework.aio
from cloudevents.http import CloudEvent

from todo_backend.catalog import by_name
from todo_backend.consumers import consume, receive
from todo_backend.email import email_channel
from todo_backend.http import event_function
from todo_backend.notifications import email_reminder, record_notification

CONSUMER = by_name("deliver-notification")


@functions_framework.aio.cloud_event
@event_function
async def deliver_notification(event: CloudEvent) -> None:
    reminder = receive(CONSUMER, event)
    await consume(CONSUMER.name, reminder, record_notification)
    mailer = email_channel()  # from the settings, logged once per process
    if mailer is not None:
        await email_reminder(CONSUMER.name, reminder, mailer)  # RetryLater: 503, so it is redelivered
