"""The reminder checker: claims open tasks whose reminder has fallen due and emits ReminderDue for each.

A task's reminder falls due at Task.remind_at (its due date less its own lead time or the default one,
fixed whenever either changes, which also clears reminded_at); until then it is armed (ArmedReminder).
The check-due-tasks cron runs one tick a minute; a reminder missed while nothing ran is sent late by
the next tick, its lateness in the event.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnClause, Update, any_, func, literal_column, not_, select, update

from todo_backend.events import OutboxRow, ReminderDue
from todo_backend.fields import utcnow
from todo_backend.metrics import count_reminders
from todo_backend.models import ArmedReminder, Task
from todo_backend.uow import UnitOfWork

log = logging.getLogger(__name__)

# A tick stops taking batches after this long: well inside the minute between cron ticks, so a large
# backlog is drained over several ticks rather than by one that overlaps the next. (Overlapping ticks
# would still be correct: they skip each other's rows.)
BUDGET_SECONDS = 20.0


@dataclass(frozen=True)
class CheckDueTasks:
    batch_size: int
    now: datetime = field(default_factory=utcnow)  # injectable: tests move the clock
    budget_seconds: float = BUDGET_SECONDS


@dataclass(frozen=True)
class CheckResult:
    reminded: int
    batches: int
    drained: bool  # False: the budget ran out with a full last batch, so more may be due


_CTID: ColumnClause[Any] = literal_column("task.ctid")


def claim_due(now: datetime, batch_size: int) -> Update:
    """Mark the oldest due reminders' tasks reminded at `now`, returning the tasks.

    The armed reminders due by `now` are taken oldest first from ix_armed_reminder_fire_at (a scan of
    what is due, however large the task table), FOR UPDATE SKIP LOCKED, so that overlapping checkers
    share the work; their tasks are then locked FOR UPDATE SKIP LOCKED too, each re-checked under its
    lock (open, not reminded since). A row another checker, or a concurrent update, completion or
    delete, holds is skipped rather than waited for, and one claimed and committed meanwhile no longer
    matches. So each reminder is claimed exactly once, however many checkers run, and its event is
    written in the same transaction as the claim. Writers lock a task, then (through the trigger of
    migration 0014, which setting reminded_at makes delete the armed row) its armed row; the checker
    waits for no task it does not hold, so the two orders cannot deadlock.
    """
    armed = (
        select(ArmedReminder.task_id)
        .where(ArmedReminder.fire_at <= now)
        .order_by(ArmedReminder.fire_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    due = (
        select(_CTID)
        .where(
            # = ANY(ARRAY(...)), not IN (...): IN is planned as a hash join over a scan of every task,
            # which grows with the table; the array's ids are looked up by primary key.
            Task.id == any_(func.array(armed.scalar_subquery())),
            not_(Task.completed),
            Task.reminded_at.is_(None),
            Task.remind_at <= now,
        )
        .with_for_update(skip_locked=True)
    )
    return (
        update(Task)
        # By the locked rows' ctids (a TID scan): looking them up by primary key again would walk the
        # index twice, its depth growing with the table. A locked row stays where it is until the commit.
        .where(_CTID == any_(func.array(due.scalar_subquery())))
        .values(reminded_at=now)
        .returning(Task)
        .execution_options(synchronize_session=False)
    )


async def remind_batch(now: datetime, batch_size: int, uow: UnitOfWork) -> list[OutboxRow]:
    """Claim one batch and write a reminder.due outbox row per task, in one transaction."""
    async with uow:
        tasks = list((await uow.session.execute(claim_due(now, batch_size))).scalars())
        for task in sorted(tasks, key=lambda t: (t.remind_at, t.id)):
            assert task.remind_at is not None
            uow.emit(ReminderDue(task, task.remind_at))
        await uow.commit()
    return uow.committed


async def check_due_tasks(cmd: CheckDueTasks, uow: UnitOfWork) -> CheckResult:
    """One tick: batch after batch, oldest first, until none is left due or the budget is spent.

    Each batch is its own commit, and publishing is the entry's (bootstrap.collecting_commits): it
    publishes each batch right after its commit, so the first reminders of a backlog do not wait for
    the last.
    """
    deadline = time.monotonic() + cmd.budget_seconds
    reminded = batches = 0
    while True:
        rows = await remind_batch(cmd.now, cmd.batch_size, uow)
        batches += 1
        reminded += len(rows)
        if rows:
            count_reminders(len(rows))
        if not rows:
            # What is left due, if anything, another checker or writer holds right now. A short batch
            # is no sign: its armed rows were taken before their tasks' locks, some of which it skipped.
            drained = True
            break
        if time.monotonic() >= deadline:
            drained = False
            break
    if reminded:
        log.info("emitted %d reminders in %d batches", reminded, batches)
    return CheckResult(reminded, batches, drained)
