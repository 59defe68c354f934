"""The checker's claim statement and the shape of a tick, without a database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import async_sessionmaker

from todo_backend import reminders
from todo_backend.models import TaskEvent
from todo_backend.reminders import CheckDueTasks, check_due_tasks, claim_due
from todo_backend.settings import Settings
from todo_backend.uow import UnitOfWork

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def test_the_claim_takes_the_oldest_due_armed_reminders_of_open_unreminded_tasks_skipping_locked_ones() -> (
    None
):
    sql = " ".join(str(claim_due(NOW, 500).compile(dialect=postgresql.dialect())).split())
    assert sql.startswith("UPDATE task SET reminded_at=")
    assert "armed_reminder.fire_at <= " in sql and "ORDER BY armed_reminder.fire_at LIMIT " in sql
    assert "NOT task.completed AND task.reminded_at IS NULL AND task.remind_at <= " in sql
    assert sql.count("FOR UPDATE SKIP LOCKED") == 2  # the armed rows, then their tasks
    assert " RETURNING " in sql


def test_a_tick_claims_at_tick_start_time_unless_told_otherwise() -> None:
    before = datetime.now(UTC)
    cmd = CheckDueTasks(batch_size=10)
    assert before <= cmd.now <= datetime.now(UTC)
    assert cmd.now.tzinfo is not None


class Batches:
    """Stands in for remind_batch: hands out batches of the given sizes, then empty ones."""

    def __init__(self, *sizes: int) -> None:
        self.sizes = list(sizes)
        self.calls: list[tuple[datetime, int]] = []

    async def __call__(self, now: datetime, batch_size: int, uow: UnitOfWork) -> list[TaskEvent]:
        self.calls.append((now, batch_size))
        size = self.sizes.pop(0) if self.sizes else 0
        return [TaskEvent() for _ in range(size)]


def unused_uow() -> UnitOfWork:
    settings = Settings(database_url="postgresql://unused/x", jwt_secret="s" * 40)
    return UnitOfWork(async_sessionmaker(), "check-due-tasks", settings)  # unbound: it never connects


async def test_a_tick_takes_batches_until_one_comes_back_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    batches = Batches(10, 3, 10)  # a short batch (tasks a writer held were skipped) is no end
    monkeypatch.setattr(reminders, "remind_batch", batches)
    counted: list[int] = []
    monkeypatch.setattr(reminders, "count_reminders", counted.append)
    result = await check_due_tasks(CheckDueTasks(batch_size=10, now=NOW), unused_uow())
    assert (result.reminded, result.batches, result.drained) == (23, 4, True)
    assert batches.calls == [(NOW, 10)] * 4  # one instant for the whole tick
    assert counted == [10, 3, 10]  # todo_reminders_sent_total


async def test_a_tick_stops_when_its_budget_is_spent_and_says_more_may_be_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reminders, "remind_batch", Batches(10, 10, 10))
    monkeypatch.setattr(reminders, "count_reminders", lambda sent: None)
    cmd = CheckDueTasks(batch_size=10, now=NOW, budget_seconds=0.0)
    result = await check_due_tasks(cmd, unused_uow())
    assert (result.reminded, result.batches, result.drained) == (10, 1, False)
