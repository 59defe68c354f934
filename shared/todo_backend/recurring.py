"""Recurring tasks: the series' commands and handlers, the materializer tick and the completion consumer.

A series (RecurringTask) creates occurrences: ordinary tasks with recurring_task_id and occurrence_at set.
`next_occurrence_at` is the time of the series' upcoming occurrence, which already exists as a task (null
once the series has ended). Every path that creates or moves an occurrence first holds the series' row
lock; beneath that, INSERT ... ON CONFLICT DO NOTHING on uq_task_occurrence makes each occurrence exist
once however many ticks, replicas or duplicate events race.

Handlers take `now` as a parameter (default: the clock), so tests can move time.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.dialects.postgresql import insert

from todo_backend.consumers import InboundEvent, written
from todo_backend.errors import Forbidden, NotFound, PoisonEvent, Unprocessable, at_version
from todo_backend.events import (
    RecurringTaskCreated,
    RecurringTaskDeleted,
    RecurringTaskUpdated,
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskUpdated,
    recurring_task_json,
)
from todo_backend.fields import utcnow
from todo_backend.models import Anchor, Project, RecurringTask, RecurringTaskCreate, Task, touch
from todo_backend.paging import Page, PageQuery, by_creation, creation_page
from todo_backend.projects import member_role
from todo_backend.recurrence import InvalidSchedule, Schedule
from todo_backend.roles import ProjectRole, require
from todo_backend.subtasks import tree_key
from todo_backend.tasks import check_assignee, rearm_reminder, remove
from todo_backend.uow import UnitOfWork

log = logging.getLogger(__name__)

# Edits to these re-plan the upcoming occurrence (so does unpausing).
SCHEDULING = ("schedule", "timezone", "starts_at", "until", "max_occurrences", "anchor")
NEXT_OCCURRENCES = 5
# After downtime, occurrences_skipped grows by at most this much per catch-up: counting missed firings
# walks them one by one, and a catch-up must cost no more after ten years down than after a day. A series
# that missed more records only SKIP_COUNT_CAP (a lower bound, then, not the exact number).
SKIP_COUNT_CAP = 1000
# Series claimed per transaction, and transactions per tick: a tick's work is bounded, and a backlog
# larger than BATCH * MAX_BATCHES is finished by the next ticks.
MATERIALIZE_BATCH = 100
MATERIALIZE_MAX_BATCHES = 10
# The predicate of ix_recurring_task_due, spelled with constants (not bound parameters) so PostgreSQL can
# prove that every plan, generic ones included, may use the partial index; its third term,
# next_occurrence_at IS NOT NULL, follows from the `next_occurrence_at <= now` the scan adds.
_DUE = text("NOT recurring_task.paused AND recurring_task.anchor = 'schedule'")
# starts_at and until must fall in here: near year 1 or 9999 an occurrence time (or its reminder) would
# leave the range of Python's datetime and PostgreSQL's timestamptz.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


# --- commands -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateRecurringTask:
    user_id: str
    fields: RecurringTaskCreate


@dataclass(frozen=True)
class UpdateRecurringTask:
    user_id: str
    recurring_task_id: uuid.UUID
    changes: dict[str, Any]  # validated fields; for a replace, every editable field
    if_match: frozenset[int] | None = None


@dataclass(frozen=True)
class DeleteRecurringTask:
    user_id: str
    recurring_task_id: uuid.UUID
    if_match: frozenset[int] | None = None


@dataclass(frozen=True)
class Materialized:
    """What one materializer tick did."""

    due: int  # series claimed
    created: int  # occurrences inserted
    skipped: int  # missed occurrences recorded instead of created
    ended: int  # series that reached their until or max_occurrences
    paused: int = 0  # series paused because their schedule can no longer be worked out


# --- the schedule of a series ---------------------------------------------------------------------


def schedule_of(series: RecurringTask) -> Schedule:
    return Schedule.parse(series.schedule, series.timezone)


def _allows(series: RecurringTask, at: datetime, *, new: bool) -> bool:
    """Whether the series may have an occurrence at `at`: a new one counts against max_occurrences."""
    if series.until is not None and at > series.until:
        return False
    if series.max_occurrences is None:
        return True
    return series.occurrences_created + int(new) <= series.max_occurrences


def next_occurrences(series: RecurringTask, now: datetime, count: int = NEXT_OCCURRENCES) -> list[datetime]:
    """The next `count` occurrence times strictly after the later of `now` and starts_at: fewer where
    until or max_occurrences ends the series first, none while paused."""
    if series.paused:
        return []
    try:
        upcoming = schedule_of(series).upcoming(max(now, series.starts_at), count)
    except InvalidSchedule:
        return []  # stored before it was refused (or its zone changed since): the tick pauses it
    budget = None
    if series.max_occurrences is not None:
        budget = series.max_occurrences - series.occurrences_created
    out: list[datetime] = []
    for at in upcoming:
        if series.until is not None and at > series.until:
            break
        # Up to the upcoming occurrence the times exist already; beyond it each uses up the budget.
        exists = series.next_occurrence_at is not None and at <= series.next_occurrence_at
        if budget is not None and not exists:
            if budget <= 0:
                break
            budget -= 1
        out.append(at)
    return out


def recurring_json(series: RecurringTask, now: datetime) -> dict[str, Any]:
    return recurring_task_json(series, next_occurrences(series, now))


# --- occurrences ----------------------------------------------------------------------------------


def _occurrence(series: RecurringTask, at: datetime, default_minutes: int, now: datetime) -> Task:
    """The series' occurrence at `at`, created at `now`."""
    task = Task(
        user_id=series.user_id,
        title=series.title,
        description=series.description,
        priority=series.priority,
        tags=list(series.tags),
        remind_before_minutes=series.remind_before_minutes,
        due_date=at,
        recurring_task_id=series.id,
        occurrence_at=at,
        project_id=series.project_id,
        assignee_id=series.assignee_id,
    )
    task.updated_at = task.created_at
    rearm_reminder(task, default_minutes)
    if task.remind_at is not None and task.remind_at <= now:
        # A lead as long as the series' period (a daily series, the default day ahead) would remind
        # of each occurrence the moment it is created: such a reminder comes when it is due instead.
        task.remind_at = task.due_date
    return task


async def _insert_occurrences(
    planned: list[tuple[RecurringTask, datetime]], uow: UnitOfWork, now: datetime
) -> dict[uuid.UUID, Task]:
    """Create each series' occurrence at its time in one statement, skipping those that exist already;
    the ones created, by series id, counted and announced."""
    if not planned:
        return {}
    default_minutes = uow.settings.default_remind_before_minutes
    tasks = {series.id: _occurrence(series, at, default_minutes, now) for series, at in planned}
    stmt = (
        insert(Task)
        .values([task.model_dump() for task in tasks.values()])
        .on_conflict_do_nothing(index_elements=["recurring_task_id", "occurrence_at"])
        .returning(Task.recurring_task_id)
    )
    created = {series_id for (series_id,) in await uow.session.execute(stmt)}
    for series, _ in planned:
        if series.id in created:
            series.occurrences_created += 1
            uow.emit(TaskCreated(tasks[series.id]))
    return {series_id: tasks[series_id] for series_id in created}


async def _insert_occurrence(
    series: RecurringTask, at: datetime, uow: UnitOfWork, now: datetime
) -> Task | None:
    """Create the series' occurrence at `at`, unless it exists already (then None, and nothing counted)."""
    return (await _insert_occurrences([(series, at)], uow, now)).get(series.id)


def _occurrences(series: RecurringTask) -> Select[tuple[Task]]:
    return select(Task).where(Task.recurring_task_id == series.id, Task.user_id == series.user_id)


async def _open_upcoming(series: RecurringTask, now: datetime, uow: UnitOfWork) -> Task | None:
    stmt = (
        _occurrences(series)
        .where(Task.completed.is_(False), Task.occurrence_at > now)
        .order_by(Task.occurrence_at)
        .limit(1)
        .with_for_update()
    )
    return (await uow.session.execute(stmt)).scalar_one_or_none()


async def _exists(series: RecurringTask, at: datetime, uow: UnitOfWork, *, open_only: bool = False) -> bool:
    stmt = _occurrences(series).where(Task.occurrence_at == at)
    if open_only:
        stmt = stmt.where(Task.completed.is_(False))
    return (await uow.session.execute(stmt.limit(1))).first() is not None


async def _replan(series: RecurringTask, now: datetime, uow: UnitOfWork) -> None:
    """Make the upcoming occurrence match the series as it now is: keep it, move it, or create it.

    Never a second open upcoming occurrence: an open one in the future is moved to the new time, and a
    new one is created only when none is open. An ended series keeps its tasks, like a deleted one.
    """
    if series.paused:
        return  # unpausing re-plans
    target = schedule_of(series).next_after(max(now, series.starts_at))
    upcoming = await _open_upcoming(series, now, uow)
    if upcoming is not None:
        assert upcoming.occurrence_at is not None
        if not _allows(series, target, new=False):
            series.next_occurrence_at = None
        elif upcoming.occurrence_at == target or await _exists(series, target, uow):
            # Either already right, or the new time's occurrence exists (completed early): keep this one.
            series.next_occurrence_at = upcoming.occurrence_at
        else:
            upcoming.occurrence_at = upcoming.due_date = target
            rearm_reminder(upcoming, uow.settings.default_remind_before_minutes)
            touch(upcoming)
            uow.emit(TaskUpdated(upcoming, ("due_date", "occurrence_at")))
            series.next_occurrence_at = target
        return
    current = series.next_occurrence_at
    if series.anchor is Anchor.completion and current is not None:
        if await _exists(series, current, uow, open_only=True):
            return  # its one open occurrence is overdue: completing it schedules the next
    if not _allows(series, target, new=True):
        series.next_occurrence_at = None
        return
    await _insert_occurrence(series, target, uow, now)
    series.next_occurrence_at = target


# --- API handlers ---------------------------------------------------------------------------------


def _check_instants(series: RecurringTask) -> None:
    """starts_at and until within the calendar the schedule can be worked out in, and in order."""
    for name in ("starts_at", "until"):
        value = getattr(series, name)
        if value is not None and not EARLIEST <= value < LATEST:
            raise Unprocessable(f"must be from {EARLIEST.date()} to before {LATEST.date()} (UTC)", name)
    if series.until is not None and series.until <= series.starts_at:
        raise Unprocessable("until must be later than starts_at", "until")


def _check_fires(series: RecurringTask, now: datetime) -> None:
    """The schedule fires in the series' own zone: a schedule valid in UTC can match only wall times
    that a daylight-saving gap skips there."""
    try:
        schedule_of(series).next_after(max(now, series.starts_at))
    except InvalidSchedule as exc:
        raise Unprocessable(str(exc), "schedule") from exc


def _stop_broken(series: RecurringTask, exc: Exception, uow: UnitOfWork) -> None:
    """Pause a series whose schedule can no longer be worked out (stored before a check refused it, or
    its zone's rules changed), so that it is not claimed again; unpausing checks it and says why."""
    _pause(series, f"its schedule cannot be evaluated: {exc}", uow)


def _pause(series: RecurringTask, why: str, uow: UnitOfWork) -> None:
    log.error("pausing recurring task %s: %s", series.id, why)
    series.paused = True
    _touch_series(series)
    uow.emit(RecurringTaskUpdated(series, ("paused",)))


async def _check_team(series: RecurringTask, uow: UnitOfWork) -> None:
    """A project's series is its owner's while they may add tasks to the project (kept from deletion
    until the commit), and its assignee a member; an inbox series' assignee is its owner. Locks in the
    order every path takes them: the series, the project, the memberships."""
    if series.project_id is not None:
        kept = select(Project.id).where(Project.id == series.project_id).with_for_update(key_share=True)
        role = (
            await member_role(uow, series.user_id, series.project_id)
            if await uow.session.scalar(kept)
            else None
        )
        if role is None:
            raise NotFound("no such project", "project_id")
        require(role, ProjectRole.editor, "adding its tasks")
    await check_assignee(uow, series)


async def _still_placed(series: RecurringTask, uow: UnitOfWork) -> bool:
    """Whether the series may add an occurrence now (_check_team). One whose owner may not (the project
    is gone, or they left it or became a viewer) is paused; an assignee who left is cleared. Each
    change with its event."""
    try:
        await _check_team(series, uow)
    except Unprocessable:  # the assignee left the project
        series.assignee_id = None
        _touch_series(series)
        uow.emit(RecurringTaskUpdated(series, ("assignee_id",)))
    except (NotFound, Forbidden) as exc:
        _pause(series, f"its owner cannot add tasks to project {series.project_id}: {exc}", uow)
        return False
    return True


def _touch_series(series: RecurringTask) -> None:
    touch(series)


async def _get_for_update(
    uow: UnitOfWork, user_id: str, recurring_task_id: uuid.UUID, if_match: frozenset[int] | None
) -> RecurringTask:
    # The row lock serializes edits with the materializer and the completion consumer.
    series = await uow.session.get(RecurringTask, recurring_task_id, with_for_update=True)
    if series is None or series.user_id != user_id:
        raise NotFound("no such recurring task")  # another user's is indistinguishable from none
    at_version("recurring task", series.version, if_match)
    return series


async def create_recurring_task(
    cmd: CreateRecurringTask, uow: UnitOfWork, now: datetime | None = None
) -> dict[str, Any]:
    """The new series' JSON; its first occurrence is created in the same transaction."""
    now = now or utcnow()
    values = cmd.fields.model_dump()
    values["starts_at"] = values["starts_at"] or now
    series = RecurringTask(user_id=cmd.user_id, **values)
    series.updated_at = series.created_at
    _check_instants(series)
    _check_fires(series, now)
    async with uow:
        await _check_team(series, uow)
        uow.session.add(series)
        uow.emit(RecurringTaskCreated(series))
        await _replan(series, now, uow)
        await uow.commit()
    return recurring_json(series, now)


async def update_recurring_task(
    cmd: UpdateRecurringTask, uow: UnitOfWork, now: datetime | None = None
) -> dict[str, Any]:
    now = now or utcnow()
    async with uow:
        series = await _get_for_update(uow, cmd.user_id, cmd.recurring_task_id, cmd.if_match)
        changes = dict(cmd.changes)
        if "starts_at" in changes and changes["starts_at"] is None:
            changes["starts_at"] = now  # a replace without starts_at: the default, as on create
        changed = [name for name, value in changes.items() if getattr(series, name) != value]
        if changed:
            for name in changed:
                setattr(series, name, changes[name])
            _check_instants(series)
            if {"project_id", "assignee_id"} & set(changed) or ("paused" in changed and not series.paused):
                await _check_team(series, uow)
            replan = set(changed) & set(SCHEDULING) or ("paused" in changed and not series.paused)
            if replan:
                _check_fires(series, now)
            _touch_series(series)
            uow.emit(RecurringTaskUpdated(series, tuple(changed)))
            if replan:
                await _replan(series, now, uow)
            await uow.commit()
    return recurring_json(series, now)


async def delete_recurring_task(cmd: DeleteRecurringTask, uow: UnitOfWork) -> None:
    """Stops future occurrences; existing ones, the open upcoming one included, stay ordinary tasks."""
    async with uow:
        series = await _get_for_update(uow, cmd.user_id, cmd.recurring_task_id, cmd.if_match)
        await uow.session.delete(series)
        uow.emit(RecurringTaskDeleted(series))
        await uow.commit()


async def get_recurring_task(
    user_id: str, recurring_task_id: uuid.UUID, uow: UnitOfWork, now: datetime | None = None
) -> dict[str, Any]:
    async with uow:
        series = await uow.session.get(RecurringTask, recurring_task_id)
    if series is None or series.user_id != user_id:
        raise NotFound("no such recurring task")
    return recurring_json(series, now or utcnow())


async def list_recurring_tasks(
    user_id: str, query: PageQuery, uow: UnitOfWork, now: datetime | None = None
) -> Page:
    """The user's series, oldest first, with a keyset cursor on (created_at, id)."""
    stmt = by_creation(
        select(RecurringTask).where(RecurringTask.user_id == user_id),
        RecurringTask,
        query,
        newest_first=False,
    )
    async with uow:
        rows = list((await uow.session.execute(stmt)).scalars())
    now = now or utcnow()
    return creation_page(rows, query.limit, lambda series: recurring_json(series, now))


# --- the materializer (cron) ----------------------------------------------------------------------


def _claim_due(now: datetime, batch: int) -> Select[tuple[RecurringTask]]:
    # Reads only the due entries of the partial index ix_recurring_task_due, oldest first: a tick costs
    # what is due, not how many series exist. FOR UPDATE SKIP LOCKED: overlapping ticks and replicas
    # claim disjoint series instead of queueing on each other's locks.
    return (
        select(RecurringTask)
        .where(_DUE, RecurringTask.next_occurrence_at <= now)
        .order_by(RecurringTask.next_occurrence_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )


def _advance(series: RecurringTask, now: datetime) -> tuple[datetime | None, int]:
    """Plan the occurrence after a passed one: its time (None: the series has ended), and how many
    firings were missed.

    The next one is the first firing after `now`, never the ones missed while nothing ran: those are
    only counted (at most SKIP_COUNT_CAP), so a catch-up costs one insert however long the downtime.
    """
    previous = series.next_occurrence_at
    assert previous is not None
    schedule = schedule_of(series)
    end = now if series.until is None else min(now, series.until)
    skipped = schedule.count_between(previous, end, cap=SKIP_COUNT_CAP) if end > previous else 0
    series.occurrences_skipped += skipped
    at = schedule.next_after(max(now, series.starts_at))
    series.next_occurrence_at = at if _allows(series, at, new=True) else None
    return series.next_occurrence_at, skipped


async def materialize_due(
    uow: UnitOfWork,
    now: datetime | None = None,
    batch: int = MATERIALIZE_BATCH,
    max_batches: int = MATERIALIZE_MAX_BATCHES,
) -> Materialized:
    """One cron tick: for each schedule-anchored series whose upcoming occurrence has passed, create the
    next. Batches of `batch` series, each batch one transaction and one INSERT of its occurrences, at
    most `max_batches` of them."""
    now = now or utcnow()
    due = created = skipped = ended = paused = 0
    for _ in range(max_batches):
        async with uow:
            claimed = list((await uow.session.execute(_claim_due(now, batch))).scalars())
            planned: list[tuple[RecurringTask, datetime]] = []
            with uow.session.no_autoflush:  # the series' new state is written once, at commit
                for series in claimed:
                    if not await _still_placed(series, uow):
                        paused += 1
                        continue
                    try:
                        at, missed = _advance(series, now)
                    except ValueError as exc:  # InvalidSchedule, or a date out of range
                        _stop_broken(series, exc, uow)
                        paused += 1
                        continue
                    skipped += missed
                    if at is None:
                        ended += 1
                    else:
                        planned.append((series, at))
                created += len(await _insert_occurrences(planned, uow, now))
            await uow.commit()
        due += len(claimed)
        if len(claimed) < batch:
            break
    return Materialized(due, created, skipped, ended, paused)


# --- the completion consumer ----------------------------------------------------------------------


async def schedule_next_occurrence(event: InboundEvent, uow: UnitOfWork) -> Task | None:
    """dev.todo.task.completed (or .deleted) -> the next occurrence of a completion-anchored series.

    Runs inside the consumer's transaction. Only the series' current occurrence (the one at
    next_occurrence_at) creates a successor, and creating it moves next_occurrence_at on: a duplicate
    event, or a re-completed occurrence whose successor stayed when it was reopened, finds it no longer
    current (reopening withdraws an unchanged successor and makes the occurrence current again: see
    withdraw_successor). Deleting the current occurrence hands on to the next one too, or the series
    would wait for an occurrence that is gone.
    """
    assert isinstance(event.event, TaskCompleted | TaskDeleted)  # the types this consumer takes
    task_id = event.event.task.id
    if isinstance(event.event, TaskDeleted):
        gone = event.event.task  # the event's copy is all there is
        if gone.recurring_task_id is None or gone.occurrence_at is None:
            return None
        finished_at = event.time or utcnow()
        return await _succeed(
            event, None, gone.recurring_task_id, task_id, gone.occurrence_at, finished_at, uow
        )
    # The event says which task (consume has checked it is the event user's); the database says what
    # state it is in.
    occurrence = await uow.session.get(Task, task_id)
    if occurrence is None:
        return None  # deleted since: its deleted event hands on
    if occurrence.recurring_task_id is None or occurrence.occurrence_at is None:
        return None
    if not occurrence.completed or occurrence.completed_at is None:
        return None  # reopened since: its next completion schedules the successor
    return await _succeed(
        event,
        occurrence.user_id,
        occurrence.recurring_task_id,
        task_id,
        occurrence.occurrence_at,
        occurrence.completed_at,
        uow,
    )


def _successor_at(series: RecurringTask, occurrence_at: datetime, finished_at: datetime) -> datetime:
    """When the successor of the occurrence at `occurrence_at`, finished at `finished_at`, is due."""
    # Finished early, the first firing after that would be this occurrence's own time again.
    return schedule_of(series).next_after(max(finished_at, occurrence_at, series.starts_at))


async def _still_finished(series: RecurringTask, task_id: uuid.UUID, at: datetime, uow: UnitOfWork) -> bool:
    """Whether the series' occurrence at `at` is still the finished task: completed, or gone.

    Read afresh under the series' lock, which reopening takes too: the task may have been reopened
    since the event was sent, or been a successor that reopening withdrew, whose time a new occurrence
    has taken since; its late task.deleted must not hand the series on a second time.
    """
    stmt = _occurrences(series).where(Task.occurrence_at == at).with_only_columns(Task.id, Task.completed)
    found = (await uow.session.execute(stmt)).first()
    return found is None or (found.id == task_id and found.completed)


async def _succeed(
    event: InboundEvent,
    owner: str | None,
    series_id: uuid.UUID,
    task_id: uuid.UUID,
    occurrence_at: datetime,
    finished_at: datetime,
    uow: UnitOfWork,
) -> Task | None:
    """The successor of the series' occurrence `task_id` at `occurrence_at`, finished (completed or
    deleted) at `finished_at`, if that is the series' current occurrence and the series wants one.
    `owner`: the occurrence's owner as its row says, None if it is gone."""
    series = await uow.session.get(RecurringTask, series_id, with_for_update=True)
    if series is None:
        return None  # the series was deleted: no more occurrences
    if owner is not None and owner != series.user_id:
        raise PoisonEvent(f"task {task_id} is not an occurrence of its owner's recurring task {series.id}")
    if owner is None and series.user_id != event.user_id:
        # A project's occurrence is deleted by any of its members: an event this system wrote so.
        await written(uow, event, str(task_id))
    if series.anchor is not Anchor.completion or series.paused or not await _still_placed(series, uow):
        return None  # the materializer plans schedule-anchored series; unpausing re-plans
    if occurrence_at != series.next_occurrence_at or not await _still_finished(
        series, task_id, occurrence_at, uow
    ):
        log.info("task %s is not the current occurrence of %s: no successor", task_id, series.id)
        return None
    try:
        at = _successor_at(series, occurrence_at, finished_at)
    except ValueError as exc:  # InvalidSchedule, or a date out of range
        _stop_broken(series, exc, uow)
        return None
    if not _allows(series, at, new=True):
        series.next_occurrence_at = None
        return None
    # Created now, however long after the finish the event arrived.
    successor = await _insert_occurrence(series, at, uow, max(finished_at, utcnow()))
    series.next_occurrence_at = at
    return successor


async def withdraw_successor(
    occurrence: Task, completed_at: datetime, trees: frozenset[str], uow: UnitOfWork
) -> None:
    """Reopening an occurrence (completed at `completed_at`) takes back the successor its completion
    created: deleted like any task, and the reopened occurrence is the series' current one again.

    Runs in the reopening transaction. Only while that successor is the series' open occurrence and
    unchanged since it was created; a changed one stays, beside the reopened one. Before the completion
    event is consumed there is no successor: the consumer then finds the occurrence open and waits.
    """
    assert occurrence.recurring_task_id is not None and occurrence.occurrence_at is not None
    series = await uow.session.get(RecurringTask, occurrence.recurring_task_id, with_for_update=True)
    if series is None or series.user_id != occurrence.user_id or series.anchor is not Anchor.completion:
        return
    try:
        at = _successor_at(series, occurrence.occurrence_at, completed_at)
    except ValueError:  # InvalidSchedule, or a date out of range: whatever exists stays
        return
    if series.next_occurrence_at != at:
        return  # not this occurrence's successor (none yet, or the series moved on since)
    stmt = _occurrences(series).where(Task.occurrence_at == at).with_for_update()
    successor = (await uow.session.execute(stmt)).scalar_one_or_none()
    # Every change to a task (completing it included) raises its version; occurrences start at 1. One
    # in a tree the reopening did not lock (the occurrence moved since) stays: deleting it needs that lock.
    if (
        successor is None
        or successor.version != 1
        or tree_key(successor.project_id, successor.user_id) not in trees
    ):
        return
    await remove(successor, uow)
    series.occurrences_created -= 1
    series.next_occurrence_at = occurrence.occurrence_at
