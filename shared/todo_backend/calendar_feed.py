"""A user's calendar feed (GET /api/calendar.ics?token=...): their dated tasks and the next occurrences
of their series as iCalendar, for calendar apps to subscribe to. Those cannot send a bearer token, so
the feed is opened by a secret of its own (POST /api/me/calendar-token creates or rotates it), kept
only as its SHA-256: the one that was rotated away stops at once, an unknown one is a 404."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects.postgresql import insert

from todo_backend.errors import NotFound
from todo_backend.events import CalendarTokenRotated
from todo_backend.fields import utcnow
from todo_backend.models import CalendarToken, ProjectMember, RecurringTask, Task
from todo_backend.recurring import next_occurrences
from todo_backend.uow import UnitOfWork

if TYPE_CHECKING:
    from icalendar import Event

# What a feed holds: tasks due from a month back to a year ahead, at most this many, soonest first;
# each series' next occurrences beyond the ones that exist as tasks.
PAST = timedelta(days=31)
AHEAD = timedelta(days=366)
MAX_TASKS = 2000


@dataclass(frozen=True)
class RotateCalendarToken:
    user_id: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def rotate_token(cmd: RotateCalendarToken, uow: UnitOfWork) -> str:
    """A new token for the user's feed, in place of any they had; the token itself is never stored."""
    token = secrets.token_urlsafe(32)
    values = {"token_sha256": _digest(token), "rotated_at": utcnow()}
    stmt = (
        insert(CalendarToken)
        .values(user_id=cmd.user_id, **values)
        .on_conflict_do_update(index_elements=["user_id"], set_=values)
    )
    async with uow:
        await uow.session.execute(stmt)
        uow.emit(CalendarTokenRotated(cmd.user_id, values["rotated_at"]))
        await uow.commit()
    return token


async def owner_of(token: str | None, uow: UnitOfWork) -> str:
    """Whose feed the token opens; NotFound for none (a missing, rotated or made-up token alike)."""
    if not token or len(token) > 200:
        raise NotFound("no such calendar feed", "token")
    async with uow:
        stmt = select(CalendarToken.user_id).where(CalendarToken.token_sha256 == _digest(token))
        user_id = await uow.session.scalar(stmt)
    if user_id is None:
        raise NotFound("no such calendar feed", "token")
    return user_id


async def feed(user_id: str, uow: UnitOfWork, now: datetime | None = None) -> bytes:
    """The feed: a VEVENT per open dated task the user sees (their inbox, their projects), at its due
    instant in UTC (no DTEND: it ends as it starts, RFC 5545 3.6.1), and one per upcoming occurrence of
    their series not yet created."""
    from icalendar import Calendar  # ~80 ms of imports that rotating a token does without

    now = now or utcnow()
    projects = select(ProjectMember.project_id).where(ProjectMember.user_id == user_id)
    visible = or_(and_(Task.project_id.is_(None), Task.user_id == user_id), Task.project_id.in_(projects))
    tasks = (
        select(Task)
        .where(visible, ~Task.completed, Task.due_date >= now - PAST, Task.due_date <= now + AHEAD)
        .order_by(Task.due_date, Task.id)
        .limit(MAX_TASKS)
    )
    async with uow:
        rows = list(await uow.session.scalars(tasks))
        series = list(
            await uow.session.scalars(select(RecurringTask).where(RecurringTask.user_id == user_id))
        )
    calendar = Calendar()
    calendar.add("prodid", "-//todo-backend//calendar feed//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "Tasks")
    for task in rows:
        assert task.due_date is not None  # the query's
        calendar.add_component(_event(f"task-{task.id}", task.title, task.due_date, now, task.description))
    for one in series:
        for at in next_occurrences(one, now):
            # Up to its upcoming occurrence a series' times are tasks already (or were, and are done).
            if one.next_occurrence_at is None or at > one.next_occurrence_at:
                calendar.add_component(_event(f"series-{one.id}-{at:%Y%m%dT%H%M%SZ}", one.title, at, now))
    return calendar.to_ical()


def _event(uid: str, title: str, at: datetime, now: datetime, description: str = "") -> Event:
    from icalendar import Event  # as in feed

    event = Event()
    event.add("uid", f"{uid}@todo-backend")
    event.add("dtstamp", now)
    event.add("summary", title)
    event.add("dtstart", at)
    if description:
        event.add("description", description)
    return event


def token_json(token: str, base: str) -> dict[str, Any]:
    """The answer to a rotation: the token, and the feed's URL under `base` (http.public_base)."""
    return {"token": token, "url": f"{base}/api/calendar.ics?token={token}"}
