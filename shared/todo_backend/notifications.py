"""In-app notifications, their listing and read state, and the reminder email: written in the
recipient's time zone and language (their settings, locales.py).

deliver-notification turns a reminder, an assignment or a new membership into at most one notification
per event (its tracking row and the unique event_id); a reminder then, where the email channel is on,
into one email to the same user, sent with no transaction open, under a tracking row of its own
written after the send.
"""

from __future__ import annotations

import html
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from todo_backend.bootstrap import unit_of_work
from todo_backend.consumers import InboundEvent, consume
from todo_backend.email import DaprSmtpBinding, Email, EmailNotSent, recipient
from todo_backend.errors import Conflict, NotFound, RetryLater, Unprocessable
from todo_backend.events import ProjectMemberAdded, ReminderDue, TaskCreated, TaskUpdated
from todo_backend.fields import utcnow
from todo_backend.models import (
    Notification,
    NotificationKind,
    NotificationPublic,
    ProcessedEvent,
    Project,
    ProjectMember,
    Snooze,
    Task,
    touch,
)
from todo_backend.paging import Page, PageQuery, by_creation, creation_page
from todo_backend.preferences import settings_of
from todo_backend.projects import member_role
from todo_backend.tasks import task_role
from todo_backend.uow import UnitOfWork

log = logging.getLogger(__name__)

SUBJECT_CHARS = 150
MAX_SNOOZE = timedelta(days=7)


# --- the in-app notification: deliver-notification's effect --------------------------------------------


def _due_at(reminder: ReminderDue) -> datetime:
    assert reminder.task.due_date is not None  # a reminder event always has one (events.from_cloudevent)
    return reminder.task.due_date


async def record_notification(event: InboundEvent, uow: UnitOfWork) -> uuid.UUID | None:
    """The event's notification, if it makes one, inside the consumer's transaction; its id (None if it
    makes none, or one exists). Who gets it is read from the database now, never from the event: a
    reminder goes to the task's assignee, else its creator, while a member of its project; an
    assignment to the assignee, while the task is still theirs; a membership to the member, while they
    are one. Nobody is told of what they did themselves."""
    notice = await _notice(event, uow)
    if notice is None:
        return None
    stmt = (
        insert(Notification)
        .values(id=uuid.uuid4(), event_id=event.id, created_at=utcnow(), **notice)
        # The tracking row already makes a redelivery a no-op; the unique event id holds regardless.
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(Notification.id)
    )
    return (await uow.session.execute(stmt)).scalar_one_or_none()


async def _notice(event: InboundEvent, uow: UnitOfWork) -> dict[str, Any] | None:
    """The notification's columns for the event, or None if it calls for none."""
    # Imported here: Babel's CLDR data is for writing notifications, not for the functions that list,
    # read or snooze them (this module's other users), whose cold start it would lengthen by ~40 ms.
    from todo_backend.locales import due_text, role_name, say

    match event.event:
        case ReminderDue(task) as reminder:
            # A task deleted since still gets its notification, from the event's copy.
            stored = await uow.session.get(Task, task.id)
            to = (stored or task).assignee_id or (stored.user_id if stored else event.user_id)
            project = (stored or task).project_id
            if project is not None and await member_role(uow, to, project) is None:
                return None  # they left the project (or it is gone): its tasks are not theirs to hear of
            settings = await settings_of(uow, to)
            return {
                "user_id": to,
                "kind": NotificationKind.reminder,
                "task_id": task.id,
                "project_id": project,
                "title": task.title,
                "body": due_text(_due_at(reminder), reminder.sent_at, settings.timezone, settings.locale),
                "due_at": _due_at(reminder),
            }
        case TaskCreated(task) | TaskUpdated(task):
            if isinstance(event.event, TaskUpdated) and "assignee_id" not in event.event.changed:
                return None
            stored = await uow.session.get(Task, task.id)
            if (
                task.assignee_id in (None, event.user_id)
                or stored is None
                or stored.assignee_id != task.assignee_id
            ):
                return None  # unassigned, self-assigned, gone, or assigned to another since (who is told)
            return {
                "user_id": task.assignee_id,
                "kind": NotificationKind.assigned,
                "task_id": task.id,
                "project_id": stored.project_id,
                "title": stored.title,
                "body": say(
                    "assigned", (await settings_of(uow, task.assignee_id)).locale, actor=event.user_id
                ),
            }
        case ProjectMemberAdded(project_id, member):
            if member.user_id == event.user_id:
                return None  # the creator of a project, its first member
            membership = await uow.session.get(ProjectMember, (project_id, member.user_id))
            project = await uow.session.get(Project, project_id)
            if membership is None or project is None:
                return None  # removed (or the project deleted) since
            locale = (await settings_of(uow, member.user_id)).locale
            role = role_name(membership.role, locale)
            return {
                "user_id": member.user_id,
                "kind": NotificationKind.added_to_project,
                "project_id": project_id,
                "title": project.name,
                "body": say("added", locale, actor=event.user_id, role=role),
            }
    raise AssertionError(f"deliver-notification takes no {event.type}")  # the catalog's event types


# --- the reminder email -------------------------------------------------------------------------------


def reminder_email(to: str, notification: Notification, locale: str) -> Email:
    """The email for a reminder's notification, in the recipient's language: plain words in a little
    HTML (the smtp binding sends text/html)."""
    from todo_backend.locales import say  # as in _notice

    # One line, and short: a title may hold line breaks, which have no place in a header.
    subject = re.sub(r"\s+", " ", say("reminder_subject", locale, title=notification.title)).strip()
    if len(subject) > SUBJECT_CHARS:
        subject = subject[: SUBJECT_CHARS - 1] + "…"
    body = (
        f"<p><strong>{html.escape(notification.title)}</strong></p>\n"
        f"<p>{html.escape(notification.body)}</p>\n"
    )
    return Email(to, subject, body)


async def email_reminder(consumer: str, event: InboundEvent, mailer: DaprSmtpBinding) -> None:
    """Email the reminder once per event, tracked apart from the notification, and never inside a
    transaction: a slow sidecar or SMTP server must not pin a pool connection.

    The tracking row is written only after a successful send, in its own short transaction. A failed
    send raises RetryLater, which the entry answers 503, so the event is retried (and dead-lettered when
    retries run out): the notification committed before is not touched, and a retry finds its tracking
    row and goes straight to the email.
    A send whose tracking commit fails, or two deliveries of one event at once, send it twice: email is
    at least once.
    """
    assert isinstance(event.event, ReminderDue)
    tracking = f"{consumer}:email"
    async with unit_of_work(tracking) as uow:
        sent = select(ProcessedEvent.event_id).where(
            ProcessedEvent.consumer == tracking, ProcessedEvent.event_id == event.id
        )
        if await uow.session.scalar(sent) is not None:
            return
        # What the in-app notification said, and to whom: the one decision of who is reminded.
        notification = await uow.session.scalar(select(Notification).where(Notification.event_id == event.id))
        if notification is None:
            return  # no one to remind
        locale = (await settings_of(uow, notification.user_id)).locale
    to = recipient(notification.user_id)
    if to is None:
        return  # a user known by a non-address id has no email to go to
    try:
        await mailer.send(reminder_email(to, notification, locale))
    except EmailNotSent as exc:
        log.warning("reminder email for event %s not sent, to be retried: %s", event.id, exc)
        raise RetryLater("the reminder email was not sent; retry") from exc

    async def record_sent(event: InboundEvent, uow: UnitOfWork) -> None:
        return None  # the tracking row consume writes is the whole effect

    await consume(tracking, event, record_sent)


# --- listing and reading ------------------------------------------------------------------------------


class NotificationQuery(PageQuery):
    """list-notifications query parameters."""

    unread: bool = False


@dataclass(frozen=True)
class MarkNotificationRead:
    user_id: str
    notification_id: uuid.UUID


@dataclass(frozen=True)
class SnoozeNotification:
    user_id: str
    notification_id: uuid.UUID
    fields: Snooze


def notification_json(notification: Notification) -> dict[str, Any]:
    return NotificationPublic.model_validate(notification).model_dump(mode="json")


async def list_notifications(user_id: str, query: NotificationQuery, uow: UnitOfWork) -> Page:
    """The user's notifications, newest first (only unread ones if asked)."""
    stmt = select(Notification).where(Notification.user_id == user_id)
    if query.unread:
        stmt = stmt.where(Notification.read_at.is_(None))  # the partial index ix_notification_user_unread
    async with uow:
        page = by_creation(stmt, Notification, query, newest_first=True)
        rows = list((await uow.session.execute(page)).scalars())
    return creation_page(rows, query.limit, notification_json)


async def snooze(cmd: SnoozeNotification, uow: UnitOfWork, now: datetime | None = None) -> Notification:
    """The reminder's task reminds again at the snooze's instant, once: its reminder is armed anew for
    then (the checker fires it as any other, exactly once), replacing an earlier snooze; the
    notification is read. Until the task's due date or lead time changes, which arms the reminder
    they fix instead. Only a reminder's notification, of a task still open, dated and the user's to
    see, can be snoozed."""
    now = now or utcnow()
    fields = cmd.fields
    if (fields.minutes is None) == (fields.until is None):
        raise Unprocessable("say when to remind again: `minutes` or `until`, one of them", "minutes")
    at = now + timedelta(minutes=fields.minutes) if fields.minutes is not None else fields.until
    assert at is not None
    if not now < at <= now + MAX_SNOOZE:
        raise Unprocessable("must be in the future, within 7 days", "until")
    async with uow:
        notification = await uow.session.get(Notification, cmd.notification_id, with_for_update=True)
        if notification is None or notification.user_id != cmd.user_id:
            raise NotFound("no such notification")
        if notification.kind != NotificationKind.reminder or notification.task_id is None:
            raise Unprocessable("only a reminder can be snoozed", "id")
        task = await uow.session.get(Task, notification.task_id, with_for_update=True)
        if task is None:
            raise NotFound("the reminder's task was deleted", "id")
        await task_role(uow, cmd.user_id, task)  # NotFound for one they no longer see
        if task.completed or task.due_date is None:
            raise Conflict("the task is completed, or has no due date any more: nothing to remind of")
        task.remind_at, task.reminded_at = at, None
        touch(task)
        uow.emit(TaskUpdated(task, ("reminded_at",), cmd.user_id))
        notification.read_at = notification.read_at or now
        await uow.commit()
    return notification


async def mark_read(cmd: MarkNotificationRead, uow: UnitOfWork) -> Notification:
    """Idempotent: the first read_at stays. Another user's notification is indistinguishable from none."""
    stmt = (
        update(Notification)
        .where(Notification.id == cmd.notification_id, Notification.user_id == cmd.user_id)
        .values(read_at=func.coalesce(Notification.read_at, func.now()))
        .returning(Notification)
        .execution_options(synchronize_session=False)
    )
    async with uow:
        notification = (await uow.session.execute(stmt)).scalar_one_or_none()
        if notification is None:
            raise NotFound("no such notification")
        await uow.commit()
    return notification
