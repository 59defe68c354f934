"""The recurrence engine against real PostgreSQL, with the clock passed in: the first occurrence on create,
the materializer's ticks (one occurrence per passed one, no flood after downtime, races), the completion
consumer, the series' end, pause and resume, re-planning on edits, and deletion.

Most series here live in 2091: no real-time tick or reminder scan ever finds them due, and each test
deletes its users' rows, so a tick only ever sees the series of the test that runs it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from cloudevents.http import CloudEvent
from sqlalchemy import select, text
from taskapi import Api, Sql

from todo_backend.bootstrap import unit_of_work
from todo_backend.catalog import by_name
from todo_backend.consumers import consume, receive
from todo_backend.db import get_sessionmaker
from todo_backend.errors import Forbidden, NotFound, PoisonEvent, Unprocessable
from todo_backend.models import RecurringTaskCreate, RecurringTaskUpdate, Task, TaskEvent
from todo_backend.recurrence import Budget, Schedule
from todo_backend.recurring import (
    SKIP_COUNT_CAP,
    CreateRecurringTask,
    DeleteRecurringTask,
    Materialized,
    UpdateRecurringTask,
    _claim_due,
    create_recurring_task,
    delete_recurring_task,
    get_recurring_task,
    materialize_due,
    schedule_next_occurrence,
    update_recurring_task,
)
from todo_backend.stored import to_cloudevent_json
from todo_backend.tasks import CompleteTask, DeleteTask, UpdateTask, complete_task, delete_task, update_task

T0 = datetime(2091, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NEXT_OCCURRENCE = by_name("schedule-next-occurrence")


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2091, 1, day, hour, minute, second, tzinfo=UTC)


# --- helpers ----------------------------------------------------------------------------------------


@pytest.fixture
async def users(sql: Sql) -> AsyncIterator[Callable[[], str]]:
    made: list[str] = []

    def new() -> str:
        made.append(f"recurring-{uuid.uuid4()}")
        return made[-1]

    yield new
    await sql.delete_series_and_tasks(made)


@pytest.fixture
def user(users: Callable[[], str]) -> str:
    return users()


async def create(user: str, now: datetime, **fields: Any) -> dict[str, Any]:
    cmd = CreateRecurringTask(
        user, RecurringTaskCreate.model_validate({"title": "water the plants", **fields})
    )
    return await create_recurring_task(cmd, unit_of_work("create-recurring-task"), now=now)


async def update(user: str, series: dict[str, Any], now: datetime, **changes: Any) -> dict[str, Any]:
    validated = RecurringTaskUpdate.model_validate(changes).model_dump(exclude_unset=True)
    cmd = UpdateRecurringTask(user, uuid.UUID(series["id"]), validated)
    return await update_recurring_task(cmd, unit_of_work("update-recurring-task"), now=now)


async def get(user: str, series: dict[str, Any], now: datetime) -> dict[str, Any]:
    return await get_recurring_task(user, uuid.UUID(series["id"]), unit_of_work("get-recurring-task"), now)


async def tick(now: datetime, **kw: Any) -> Materialized:
    return await materialize_due(unit_of_work("materialize-recurrences"), now=now, **kw)


async def occurrences(sql: Sql, series: dict[str, Any]) -> list[asyncpg.Record]:
    return await sql.pool.fetch(
        "SELECT * FROM task WHERE recurring_task_id = $1 ORDER BY occurrence_at", uuid.UUID(series["id"])
    )


async def times(sql: Sql, series: dict[str, Any]) -> list[datetime]:
    return [row["occurrence_at"] for row in await occurrences(sql, series)]


async def row(sql: Sql, series: dict[str, Any]) -> asyncpg.Record:
    found = await sql.pool.fetchrow("SELECT * FROM recurring_task WHERE id = $1", uuid.UUID(series["id"]))
    assert found is not None
    return found


async def open_upcoming(sql: Sql, series: dict[str, Any], now: datetime) -> list[datetime]:
    return [
        r["occurrence_at"]
        for r in await occurrences(sql, series)
        if not r["completed"] and r["occurrence_at"] > now
    ]


def iso(value: datetime) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


async def completed_event(task_id: uuid.UUID, event_type: str = "dev.todo.task.completed") -> CloudEvent:
    """The newest CloudEvent of a type (completed by default) of a task, as the broker would deliver it."""
    async with get_sessionmaker()() as session:
        stored = (
            await session.execute(
                select(TaskEvent)
                .where(TaskEvent.subject == str(task_id), TaskEvent.type == event_type)
                .order_by(TaskEvent.sequence.desc())
                .limit(1)
            )
        ).scalar_one()
    attributes = to_cloudevent_json(stored)
    return CloudEvent(attributes, attributes.pop("data"))


def redelivered(event: CloudEvent, **attributes: Any) -> CloudEvent:
    """The same event under a new id (or other changed attributes)."""
    return CloudEvent({**event.get_attributes(), "id": str(uuid.uuid4()), **attributes}, event.get_data())


async def deliver(event: CloudEvent) -> Task | None:
    """What the schedule-next-occurrence function does with an event."""
    return await consume(NEXT_OCCURRENCE.name, receive(NEXT_OCCURRENCE, event), schedule_next_occurrence)


async def complete(user: str, task_id: uuid.UUID, route: str = "complete-task") -> CloudEvent:
    if route == "complete-task":
        await complete_task(CompleteTask(user, task_id), unit_of_work("complete-task"))
    else:
        await update_task(UpdateTask(user, task_id, {"completed": True}), unit_of_work("update-task"))
    return await completed_event(task_id)


async def reopen(user: str, task_id: uuid.UUID) -> None:
    await update_task(UpdateTask(user, task_id, {"completed": False}), unit_of_work("update-task"))


# --- create -----------------------------------------------------------------------------------------


async def test_creating_a_series_creates_its_first_occurrence_as_an_ordinary_task(
    sql: Sql, user: str
) -> None:
    now = at(1, 10, 15)
    series = await create(
        user,
        now,
        title="stand-up",
        description="daily",
        priority="high",
        tags=["Work"],
        remind_before_minutes=15,
        schedule="0 9 * * 1-5",
        timezone="Europe/London",
    )
    first = Schedule.parse("0 9 * * 1-5", "Europe/London").next_after(now)
    [occurrence] = await occurrences(sql, series)
    assert occurrence["occurrence_at"] == occurrence["due_date"] == first == at(2, 9)
    assert (occurrence["user_id"], occurrence["title"], occurrence["description"]) == (
        user,
        "stand-up",
        "daily",
    )
    assert (occurrence["priority"], occurrence["tags"], occurrence["remind_before_minutes"]) == (
        "high",
        ["work"],
        15,
    )
    assert occurrence["remind_at"] == first - timedelta(minutes=15)  # the reminder is armed
    assert occurrence["completed"] is False
    assert series["occurrences_created"] == 1
    assert series["starts_at"] == iso(now)  # starts_at defaults to now
    assert (await row(sql, series))["next_occurrence_at"] == first

    events = await sql.pool.fetch(
        "SELECT type, source, subject FROM task_event WHERE user_id = $1 ORDER BY sequence", user
    )
    assert [(e["type"], e["source"], e["subject"]) for e in events] == [
        ("dev.todo.recurring-task.created", "/functions/create-recurring-task", series["id"]),
        ("dev.todo.task.created", "/functions/create-recurring-task", str(occurrence["id"])),
    ]


async def test_the_first_occurrence_is_the_first_firing_after_a_future_start(sql: Sql, user: str) -> None:
    series = await create(user, T0, schedule="0 9 * * *", starts_at=iso(at(5, 9)))
    assert await times(sql, series) == [at(6, 9)]  # strictly after starts_at
    assert series["next_occurrences"] == [iso(at(d, 9)) for d in range(6, 11)]


async def test_a_start_ten_years_back_creates_only_the_next_occurrence(sql: Sql, user: str) -> None:
    series = await create(user, T0 + 30 * MINUTE, schedule="* * * * *", starts_at=iso(T0 - 3653 * DAY))
    assert await times(sql, series) == [T0 + 31 * MINUTE]
    assert series["occurrences_created"] == 1


# --- the materializer -------------------------------------------------------------------------------


async def test_an_every_minute_series_gains_one_occurrence_per_tick(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 0, 0, 30), schedule="*/1 * * * *")
    assert await times(sql, series) == [at(1, 0, 1)]
    assert await tick(at(1, 0, 0, 50)) == Materialized(due=0, created=0, skipped=0, ended=0)

    for minute in range(1, 6):
        result = await tick(at(1, 0, minute, 5))
        assert result == Materialized(due=1, created=1, skipped=0, ended=0)
        assert await times(sql, series) == [at(1, 0, m) for m in range(1, minute + 2)]
    # The same instant again: the upcoming occurrence has not passed, nothing is due.
    assert await tick(at(1, 0, 5, 5)) == Materialized(due=0, created=0, skipped=0, ended=0)

    state = await row(sql, series)
    assert (state["occurrences_created"], state["occurrences_skipped"]) == (6, 0)
    assert state["next_occurrence_at"] == at(1, 0, 6)
    assert state["version"] == 1  # the engine's bookkeeping is not an edit: If-Match tags stay valid
    sources = await sql.pool.fetch(
        "SELECT DISTINCT source FROM task_event WHERE user_id = $1 AND type = 'dev.todo.task.created'"
        " AND source <> '/functions/create-recurring-task'",
        user,
    )
    assert [s["source"] for s in sources] == ["/functions/materialize-recurrences"]


async def test_schedule_anchored_occurrences_come_whether_or_not_earlier_ones_are_completed(
    sql: Sql, user: str
) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *")
    [first] = await occurrences(sql, series)
    await complete(user, first["id"])
    await tick(at(1, 9, 0, 1))
    await tick(at(2, 9, 0, 1))  # the second occurrence was never completed
    assert await times(sql, series) == [at(1, 9), at(2, 9), at(3, 9)]


async def test_concurrent_materializers_create_each_occurrence_once(
    sql: Sql, users: Callable[[], str]
) -> None:
    user = users()
    created = [await create(user, at(1, 0, 0, 30), schedule="* * * * *") for _ in range(24)]
    # Small batches, so the racing ticks interleave over several transactions each.
    results = await asyncio.gather(*(tick(at(1, 0, 1, 5), batch=5) for _ in range(4)))

    assert sum(r.created for r in results) == sum(r.due for r in results) == 24
    for series in created:
        assert await times(sql, series) == [at(1, 0, 1), at(1, 0, 2)]
        assert (await row(sql, series))["occurrences_created"] == 2
    results = await asyncio.gather(*(tick(at(1, 0, 1, 5)) for _ in range(4)))
    assert sum(r.created for r in results) == 0


async def test_a_tick_is_bounded_by_its_batches_and_the_next_tick_continues(sql: Sql, user: str) -> None:
    created = [await create(user, at(1, 0, 0, 30), schedule="* * * * *") for _ in range(7)]
    assert await tick(at(1, 0, 1, 5), batch=2, max_batches=2) == Materialized(4, 4, 0, 0)
    assert await tick(at(1, 0, 1, 5), batch=2, max_batches=2) == Materialized(3, 3, 0, 0)
    assert [len(await times(sql, s)) for s in created] == [2] * 7


async def test_after_ten_years_of_downtime_one_bounded_tick_creates_only_the_next_occurrence(
    sql: Sql, user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ten_years_ago = T0 - 3653 * DAY
    series = await create(user, ten_years_ago, schedule="* * * * *")
    assert await times(sql, series) == [ten_years_ago + MINUTE]

    steps = 0
    next_after = Schedule.next_after

    def counted(self: Schedule, instant: datetime, budget: Budget | None = None) -> datetime:
        nonlocal steps
        steps += 1
        return next_after(self, instant, budget)

    monkeypatch.setattr(Schedule, "next_after", counted)
    now = T0 + 30 * MINUTE + 10 * timedelta(seconds=1)
    assert await tick(now) == Materialized(due=1, created=1, skipped=SKIP_COUNT_CAP, ended=0)
    # Five million missed minutes: counted up to the cap, never walked or created one by one.
    assert steps <= SKIP_COUNT_CAP + 2
    assert await times(sql, series) == [ten_years_ago + MINUTE, T0 + 31 * MINUTE]
    state = await row(sql, series)
    assert (state["occurrences_skipped"], state["occurrences_created"]) == (SKIP_COUNT_CAP, 2)


async def test_missed_occurrences_are_counted_as_skipped(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *")
    # Down from the 1st 09:00 until the 4th 10:00: the 2nd, 3rd and 4th were missed.
    assert await tick(at(4, 10)) == Materialized(due=1, created=1, skipped=3, ended=0)
    assert await times(sql, series) == [at(1, 9), at(5, 9)]
    assert (await get(user, series, at(4, 10)))["occurrences_skipped"] == 3


async def test_the_due_scan_reads_the_partial_index(database_url: str) -> None:
    # The tick's cost grows with the due series, not all series: its query can use ix_recurring_task_due
    # (with sequential scans priced out, any plan that could not would show a scan of another kind).
    async with get_sessionmaker()() as session, session.begin():
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        connection = await (await session.connection()).get_raw_connection()
        stmt = _claim_due(T0, 100).compile(dialect=session.get_bind().dialect)
        params = [stmt.params[name] for name in stmt.positiontup or ()]
        plan = await connection.driver_connection.fetch(f"EXPLAIN {stmt}", *params)
    assert "ix_recurring_task_due" in "\n".join(r[0] for r in plan)


# --- the end of a series ----------------------------------------------------------------------------


async def test_until_ends_the_series_and_is_inclusive(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", until=iso(at(3, 9)))
    assert series["next_occurrences"] == [iso(at(1, 9)), iso(at(2, 9)), iso(at(3, 9))]
    assert await tick(at(1, 9, 0, 1)) == Materialized(1, 1, 0, 0)
    assert await tick(at(2, 9, 0, 1)) == Materialized(1, 1, 0, 0)
    assert await tick(at(3, 9, 0, 1)) == Materialized(due=1, created=0, skipped=0, ended=1)
    assert await tick(at(9, 9)) == Materialized(0, 0, 0, 0)
    assert await times(sql, series) == [at(1, 9), at(2, 9), at(3, 9)]
    assert (await row(sql, series))["next_occurrence_at"] is None
    assert (await get(user, series, at(3, 10)))["next_occurrences"] == []


async def test_max_occurrences_ends_the_series(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", max_occurrences=2)
    assert series["next_occurrences"] == [iso(at(1, 9)), iso(at(2, 9))]
    await tick(at(1, 9, 0, 1))
    assert (await get(user, series, at(1, 12)))["next_occurrences"] == [iso(at(2, 9))]
    assert await tick(at(2, 9, 0, 1)) == Materialized(due=1, created=0, skipped=0, ended=1)
    assert await times(sql, series) == [at(1, 9), at(2, 9)]
    ended = await get(user, series, at(2, 10))
    assert (ended["occurrences_created"], ended["next_occurrences"]) == (2, [])


async def test_a_series_whose_until_precedes_its_first_firing_creates_nothing(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 10), schedule="0 9 * * *", until=iso(at(2, 8)))
    assert await times(sql, series) == []
    assert (series["occurrences_created"], series["next_occurrences"]) == (0, [])
    assert (await row(sql, series))["next_occurrence_at"] is None


async def test_extending_an_ended_series_resumes_it(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", max_occurrences=1)
    await tick(at(1, 9, 0, 1))
    assert (await row(sql, series))["next_occurrence_at"] is None
    await update(user, series, at(3, 12), max_occurrences=3)
    assert await times(sql, series) == [at(1, 9), at(4, 9)]
    assert (await row(sql, series))["next_occurrence_at"] == at(4, 9)


# --- pause and resume -------------------------------------------------------------------------------


async def test_a_paused_series_creates_nothing_and_resumes_from_the_next_upcoming_time(
    sql: Sql, user: str
) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *")
    paused = await update(user, series, at(1, 8, 30), paused=True)
    assert (paused["paused"], paused["next_occurrences"]) == (True, [])
    assert await tick(at(4, 9, 30)) == Materialized(0, 0, 0, 0)
    assert await times(sql, series) == [at(1, 9)]  # the open upcoming one stays

    resumed = await update(user, series, at(4, 10), paused=False)
    # The 2nd to 4th passed while paused: not created, not counted as skipped; the 5th is created now.
    assert await times(sql, series) == [at(1, 9), at(5, 9)]
    assert (resumed["occurrences_created"], resumed["occurrences_skipped"]) == (2, 0)
    assert resumed["next_occurrences"][0] == iso(at(5, 9))
    assert await tick(at(5, 9, 0, 1)) == Materialized(1, 1, 0, 0)


async def test_resuming_before_the_upcoming_occurrence_keeps_it(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *")
    await update(user, series, at(1, 8, 10), paused=True)
    await update(user, series, at(1, 8, 20), paused=False)
    assert await times(sql, series) == [at(1, 9)]
    assert (await row(sql, series))["occurrences_created"] == 1


# --- re-planning on edits ---------------------------------------------------------------------------


async def test_editing_the_schedule_moves_the_open_upcoming_occurrence(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", remind_before_minutes=30)
    [before] = await occurrences(sql, series)

    await update(user, series, at(1, 8, 5), schedule="0 17 * * *")
    [moved] = await occurrences(sql, series)
    assert moved["id"] == before["id"]
    assert moved["occurrence_at"] == moved["due_date"] == at(1, 17)
    assert moved["remind_at"] == at(1, 16, 30)
    assert moved["version"] == 2

    await update(user, series, at(1, 8, 10), timezone="America/New_York")
    assert await times(sql, series) == [at(1, 22)]  # 17:00 EST
    await update(user, series, at(1, 8, 15), starts_at=iso(at(10, 0)))
    assert await times(sql, series) == [at(10, 22)]

    state = await row(sql, series)
    assert (state["occurrences_created"], state["next_occurrence_at"]) == (1, at(10, 22))
    changed = await sql.pool.fetch(
        "SELECT data->'changed' AS changed FROM task_event"
        " WHERE subject = $1 AND type = 'dev.todo.task.updated'",
        str(before["id"]),
    )
    assert [c["changed"] for c in changed] == [["due_date", "occurrence_at"]] * 3


async def test_editing_an_unrelated_field_does_not_replan(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *")
    updated = await update(user, series, at(1, 8, 5), title="new title", tags=["x"])
    assert updated["version"] == 2
    [occurrence] = await occurrences(sql, series)
    assert (occurrence["title"], occurrence["version"]) == (
        "water the plants",
        1,
    )  # existing ones keep theirs


async def test_a_schedule_edit_after_the_upcoming_was_completed_creates_one_new_open_occurrence(
    sql: Sql, user: str
) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *")
    [first] = await occurrences(sql, series)
    await complete(user, first["id"])
    await update(user, series, at(1, 8, 5), schedule="0 18 * * *")
    assert await times(sql, series) == [at(1, 9), at(1, 18)]
    assert await open_upcoming(sql, series, at(1, 8, 5)) == [at(1, 18)]
    # And back: the new open one moves, the completed one stays where it was.
    await update(user, series, at(1, 8, 10), schedule="0 12 * * *")
    assert await times(sql, series) == [at(1, 9), at(1, 12)]
    assert await open_upcoming(sql, series, at(1, 8, 10)) == [at(1, 12)]


async def test_a_schedule_edit_after_the_upcoming_passed_creates_the_next_and_keeps_the_overdue_one(
    sql: Sql, user: str
) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *")
    await update(user, series, at(1, 9, 30), schedule="0 10 * * *")
    assert await times(sql, series) == [at(1, 9), at(1, 10)]
    await update(user, series, at(1, 9, 40), schedule="30 10 * * *")
    assert await times(sql, series) == [at(1, 9), at(1, 10, 30)]
    assert await open_upcoming(sql, series, at(1, 9, 40)) == [at(1, 10, 30)]


async def test_repeated_edits_and_ticks_never_leave_two_open_upcoming_occurrences(
    sql: Sql, user: str
) -> None:
    series = await create(user, at(1, 0), schedule="*/20 * * * *")
    now = at(1, 0)
    for step, schedule in enumerate(
        ["*/15 * * * *", "5 * * * *", "*/20 * * * *", "0 * * * *", "*/7 * * * *"]
    ):
        now += timedelta(minutes=13)
        await update(user, series, now, schedule=schedule)
        await tick(now + timedelta(minutes=step))
        assert len(await open_upcoming(sql, series, now + timedelta(minutes=step))) == 1
    every = await times(sql, series)
    assert len(every) == len(set(every))


# --- deletion ---------------------------------------------------------------------------------------


async def test_deleting_a_series_keeps_its_tasks_and_stops_future_occurrences(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *")
    await tick(at(1, 9, 0, 1))
    await delete_recurring_task(
        DeleteRecurringTask(user, uuid.UUID(series["id"])), unit_of_work("delete-recurring-task")
    )
    assert await tick(at(5, 9)) == Materialized(0, 0, 0, 0)
    kept = await occurrences(sql, series)
    assert [r["occurrence_at"] for r in kept] == [at(1, 9), at(2, 9)]  # the open upcoming one included
    assert all(not r["completed"] for r in kept)
    assert (
        await sql.pool.fetchval("SELECT count(*) FROM recurring_task WHERE id = $1", uuid.UUID(series["id"]))
        == 0
    )
    deleted = await sql.pool.fetchval(
        "SELECT count(*) FROM task_event WHERE subject = $1 AND type = 'dev.todo.recurring-task.deleted'",
        series["id"],
    )
    assert deleted == 1


# --- completion anchor ------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["complete-task", "update-task"])
async def test_completing_an_occurrence_schedules_the_next_at_the_first_time_after_completion(
    sql: Sql, user: str, route: str
) -> None:
    # The first occurrence is a day overdue when it is completed (completed_at is the real clock).
    created_at = datetime.now(UTC) - DAY
    series = await create(user, created_at, schedule="*/10 * * * *", anchor="completion", tags=["home"])
    [first] = await occurrences(sql, series)
    assert first["occurrence_at"] == Schedule.parse("*/10 * * * *").next_after(created_at)

    event = await complete(user, first["id"], route)
    successor = await deliver(event)

    completed_at = (await sql.task_row(str(first["id"])))["completed_at"]
    expected = Schedule.parse("*/10 * * * *").next_after(completed_at)
    assert successor is not None and successor.occurrence_at == expected
    assert completed_at < expected <= completed_at + 10 * MINUTE
    rows = await occurrences(sql, series)
    assert [r["occurrence_at"] for r in rows] == [first["occurrence_at"], expected]
    assert (rows[1]["due_date"], rows[1]["tags"], rows[1]["completed"]) == (expected, ["home"], False)
    state = await row(sql, series)
    assert (state["next_occurrence_at"], state["occurrences_created"]) == (expected, 2)
    source = await sql.pool.fetchval(
        "SELECT source FROM task_event WHERE subject = $1 AND type = 'dev.todo.task.created'",
        str(rows[1]["id"]),
    )
    assert source == "/functions/schedule-next-occurrence"


async def test_completion_anchored_series_keep_exactly_one_open_occurrence(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    # The materializer leaves completion-anchored series alone, however much time passes.
    assert await tick(at(20, 0)) == Materialized(0, 0, 0, 0)
    assert await times(sql, series) == [at(1, 9)]


async def test_completing_before_the_due_time_schedules_the_occurrence_after_it(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    await deliver(await complete(user, first["id"]))  # completed now, decades before it is due
    assert await times(sql, series) == [at(1, 9), at(2, 9)]


async def test_a_duplicate_completion_event_creates_no_second_successor(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    event = await complete(user, first["id"])
    assert await deliver(event) is not None
    assert await deliver(event) is None  # redelivered: the tracking row says done
    assert await deliver(redelivered(event)) is None  # a second event of the same completion
    assert await times(sql, series) == [at(1, 9), at(2, 9)]
    assert (await row(sql, series))["occurrences_created"] == 2


async def test_deleting_the_open_occurrence_of_a_completion_anchored_series_hands_on_to_the_next(
    sql: Sql, user: str
) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    await delete_task(DeleteTask(user, first["id"]), unit_of_work("delete-task"))
    deleted = await completed_event(first["id"], "dev.todo.task.deleted")
    assert await deliver(deleted) is not None
    assert await times(sql, series) == [at(2, 9)]
    assert (await row(sql, series))["next_occurrence_at"] == at(2, 9)
    assert await deliver(redelivered(deleted)) is None  # no longer the current occurrence


async def test_deleting_an_earlier_occurrence_creates_nothing(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    await deliver(await complete(user, first["id"]))
    await delete_task(DeleteTask(user, first["id"]), unit_of_work("delete-task"))
    assert await deliver(await completed_event(first["id"], "dev.todo.task.deleted")) is None
    assert await times(sql, series) == [at(2, 9)]


async def test_a_deleted_event_naming_another_users_series_is_refused(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    await delete_task(DeleteTask(user, first["id"]), unit_of_work("delete-task"))
    forged = redelivered(await completed_event(first["id"], "dev.todo.task.deleted"), userid="mallory")
    with pytest.raises(PoisonEvent) as refused:
        await deliver(forged)
    assert refused.value.status == 422
    assert await times(sql, series) == []


async def test_racing_completion_events_create_one_successor(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    event = await complete(user, first["id"])
    successors = await asyncio.gather(*(deliver(redelivered(event)) for _ in range(4)))
    assert sum(s is not None for s in successors) == 1
    assert await times(sql, series) == [at(1, 9), at(2, 9)]


async def test_reopening_and_recompleting_an_occurrence_creates_no_second_successor(
    sql: Sql, user: str
) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    await deliver(await complete(user, first["id"]))
    await rename_successor(sql, user, series)  # a changed successor stays when the first is reopened
    await reopen(user, first["id"])
    again = await complete(user, first["id"], "update-task")
    # Re-completed days later: the first time after it is another day, so only the rule that just the
    # current occurrence has a successor (not the unique key) stands between it and a second one.
    await sql.pool.execute("UPDATE task SET completed_at = $1 WHERE id = $2", at(5, 12), first["id"])
    assert await deliver(again) is None
    assert await times(sql, series) == [at(1, 9), at(2, 9)]
    # Completing the current occurrence still moves the series on.
    current = (await occurrences(sql, series))[1]
    await deliver(await complete(user, current["id"]))
    assert await times(sql, series) == [at(1, 9), at(2, 9), at(3, 9)]


async def rename_successor(sql: Sql, user: str, series: dict[str, Any]) -> None:
    successor = (await occurrences(sql, series))[-1]
    await update_task(
        UpdateTask(user, successor["id"], {"title": "water the roses"}), unit_of_work("update-task")
    )


async def open_occurrences(sql: Sql, series: dict[str, Any]) -> list[datetime]:
    return [r["occurrence_at"] for r in await occurrences(sql, series) if not r["completed"]]


async def deleted_events(sql: Sql, task_id: uuid.UUID) -> list[str]:
    """The sources of the task's task.deleted events in the outbox."""
    rows = await sql.pool.fetch(
        "SELECT source FROM task_event WHERE subject = $1 AND type = 'dev.todo.task.deleted'", str(task_id)
    )
    return [r["source"] for r in rows]


async def test_reopening_an_occurrence_withdraws_the_unchanged_successor_its_completion_created(
    sql: Sql, user: str
) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    successor = await deliver(await complete(user, first["id"]))
    assert successor is not None
    await reopen(user, first["id"])
    assert await times(sql, series) == [at(1, 9)]
    assert await open_occurrences(sql, series) == [at(1, 9)]
    state = await row(sql, series)
    assert (state["next_occurrence_at"], state["occurrences_created"]) == (at(1, 9), 1)
    assert await deleted_events(sql, successor.id) == ["/functions/update-task"]


async def test_reopening_an_occurrence_keeps_a_successor_changed_since_it_was_created(
    sql: Sql, user: str
) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    successor = await deliver(await complete(user, first["id"]))
    assert successor is not None
    await rename_successor(sql, user, series)
    await reopen(user, first["id"])
    assert await open_occurrences(sql, series) == [at(1, 9), at(2, 9)]
    state = await row(sql, series)
    assert (state["next_occurrence_at"], state["occurrences_created"]) == (at(2, 9), 2)
    assert await deleted_events(sql, successor.id) == []


async def test_completing_reopening_and_recompleting_keeps_one_open_occurrence(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    withdrawn = await deliver(await complete(user, first["id"]))
    assert withdrawn is not None
    await reopen(user, first["id"])
    successor = await deliver(await complete(user, first["id"]))
    assert successor is not None and successor.id != withdrawn.id
    assert await open_occurrences(sql, series) == [at(2, 9)]
    # The withdrawn successor's task.deleted arrives last (it is on another partition): the new
    # occurrence at its time is the current one, still open, so the series is not handed on again.
    assert await deliver(await completed_event(withdrawn.id, "dev.todo.task.deleted")) is None
    assert await times(sql, series) == [at(1, 9), at(2, 9)]
    assert await open_occurrences(sql, series) == [at(2, 9)]
    state = await row(sql, series)
    assert (state["next_occurrence_at"], state["occurrences_created"]) == (at(2, 9), 2)


async def test_deleting_a_reopened_occurrence_keeps_one_open_occurrence(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    withdrawn = await deliver(await complete(user, first["id"]))
    assert withdrawn is not None
    await reopen(user, first["id"])
    assert await deliver(await completed_event(withdrawn.id, "dev.todo.task.deleted")) is None
    assert await open_occurrences(sql, series) == [at(1, 9)]
    await delete_task(DeleteTask(user, first["id"]), unit_of_work("delete-task"))
    assert await deliver(await completed_event(first["id"], "dev.todo.task.deleted")) is not None
    assert await open_occurrences(sql, series) == [at(2, 9)]
    assert await times(sql, series) == [at(2, 9)]


async def test_an_occurrence_reopened_while_its_event_waits_for_the_series_gets_no_successor(
    sql: Sql, user: str
) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    event = await complete(user, first["id"])
    async with sql.pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM recurring_task WHERE id = $1 FOR UPDATE", uuid.UUID(series["id"]))
        delivery = asyncio.create_task(deliver(event))
        # The consumer has read the occurrence (completed) and now queues on the series' lock.
        for _ in range(500):
            waiting = await sql.pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                holder.get_server_pid(),
            )
            if waiting:
                break
            await asyncio.sleep(0.01)
        assert waiting == 1
        await holder.execute(
            "UPDATE task SET completed = false, completed_at = NULL WHERE id = $1", first["id"]
        )
    assert await delivery is None
    assert await times(sql, series) == [at(1, 9)]


async def test_an_occurrence_reopened_before_its_event_arrives_waits_for_its_next_completion(
    sql: Sql, user: str
) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    event = await complete(user, first["id"])
    await reopen(user, first["id"])
    assert await deliver(event) is None
    assert await deliver(await complete(user, first["id"])) is not None
    assert await times(sql, series) == [at(1, 9), at(2, 9)]


async def test_max_occurrences_ends_a_completion_anchored_series(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion", max_occurrences=2)
    for _ in range(3):
        current = [r for r in await occurrences(sql, series) if not r["completed"]]
        if current:
            await deliver(await complete(user, current[0]["id"]))
    assert await times(sql, series) == [at(1, 9), at(2, 9)]
    assert (await row(sql, series))["next_occurrence_at"] is None


async def test_a_paused_completion_series_waits_and_resuming_creates_the_next(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    await update(user, series, at(1, 8, 5), paused=True)
    assert await deliver(await complete(user, first["id"])) is None
    assert await times(sql, series) == [at(1, 9)]
    await update(user, series, at(3, 12), paused=False)
    assert await times(sql, series) == [at(1, 9), at(4, 9)]


async def test_resuming_a_completion_series_with_an_overdue_open_occurrence_creates_nothing(
    sql: Sql, user: str
) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    await update(user, series, at(1, 8, 5), paused=True)
    await update(user, series, at(3, 12), paused=False)
    assert await times(sql, series) == [at(1, 9)]  # still its one open occurrence


async def test_switching_anchors_keeps_one_upcoming_occurrence(sql: Sql, user: str) -> None:
    series = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    await update(user, series, at(2, 12), anchor="schedule")  # the 1st is overdue and open
    assert await times(sql, series) == [at(1, 9), at(3, 9)]
    await tick(at(3, 9, 0, 1))
    assert await times(sql, series) == [at(1, 9), at(3, 9), at(4, 9)]
    await update(user, series, at(3, 12), anchor="completion")
    assert await tick(at(6, 0)) == Materialized(0, 0, 0, 0)
    [upcoming] = [r for r in await occurrences(sql, series) if r["occurrence_at"] == at(4, 9)]
    await deliver(await complete(user, upcoming["id"]))
    assert await times(sql, series) == [at(1, 9), at(3, 9), at(4, 9), at(5, 9)]


async def test_completing_an_occurrence_of_a_schedule_anchored_or_deleted_series_changes_nothing(
    sql: Sql, user: str
) -> None:
    scheduled = await create(user, at(1, 8), schedule="0 9 * * *")
    [occurrence] = await occurrences(sql, scheduled)
    assert await deliver(await complete(user, occurrence["id"])) is None
    assert await times(sql, scheduled) == [at(1, 9)]

    anchored = await create(user, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [occurrence] = await occurrences(sql, anchored)
    await delete_recurring_task(
        DeleteRecurringTask(user, uuid.UUID(anchored["id"])), unit_of_work("delete-recurring-task")
    )
    assert await deliver(await complete(user, occurrence["id"])) is None
    assert await times(sql, anchored) == [at(1, 9)]


async def test_a_completion_event_claiming_another_users_task_is_refused(
    sql: Sql, users: Callable[[], str]
) -> None:
    alice, mallory = users(), users()
    series = await create(alice, at(1, 8), schedule="0 9 * * *", anchor="completion")
    [first] = await occurrences(sql, series)
    event = await complete(alice, first["id"])
    with pytest.raises(PoisonEvent) as refused:
        await deliver(redelivered(event, userid=mallory))
    assert refused.value.status == 422
    assert await times(sql, series) == [at(1, 9)]
    assert await deliver(event) is not None  # the genuine event still works


async def test_a_completion_event_whose_series_belongs_to_another_user_is_refused(
    sql: Sql, users: Callable[[], str]
) -> None:
    alice, mallory = users(), users()
    series = await create(alice, at(1, 8), schedule="0 9 * * *", anchor="completion")
    # Mallory's own task, made to claim to be an occurrence of Alice's series.
    await sql.pool.execute(
        "UPDATE task SET user_id = $1 WHERE recurring_task_id = $2", mallory, uuid.UUID(series["id"])
    )
    [first] = await occurrences(sql, series)
    with pytest.raises(PoisonEvent) as refused:
        await deliver(await complete(mallory, first["id"]))
    assert refused.value.status == 422
    assert await times(sql, series) == [at(1, 9)]


@pytest.mark.parametrize("data", [{}, {"task": None}, {"task": {"id": "not-a-uuid"}}, {"task": {}}])
async def test_a_completion_event_without_a_task_id_is_refused(user: str, data: dict[str, Any]) -> None:
    event = CloudEvent(
        {"type": "dev.todo.task.completed", "source": "/functions/complete-task", "userid": user}, data
    )
    with pytest.raises(PoisonEvent) as refused:
        await deliver(event)
    assert refused.value.status == 422


# --- schedules that cannot be evaluated -------------------------------------------------------------

# Sundays 02:xx in the second week of March: in New York only inside the spring-forward gap, so never.
GAP_ONLY = "* 2 8-14 3 */7"


async def test_a_series_whose_schedule_no_longer_fires_is_paused_by_its_tick_and_the_batch_goes_on(
    sql: Sql, user: str
) -> None:
    # Stored before the zone check existed (or before its zone's rules changed): valid in UTC, then moved
    # to New York behind the API's back, and due.
    broken = await create(user, at(1, 8), schedule=GAP_ONLY)
    await sql.pool.execute(
        "UPDATE recurring_task SET timezone = 'America/New_York', next_occurrence_at = $2 WHERE id = $1",
        uuid.UUID(broken["id"]),
        at(1, 9),
    )
    fine = [await create(user, at(1, 8), schedule="0 * * * *") for _ in range(3)]
    counts = await tick(at(1, 10, 30), batch=10)
    assert (counts.paused, counts.created) == (1, 3)
    assert [len(await times(sql, s)) for s in fine] == [2] * 3
    assert (await row(sql, broken))["paused"] is True
    paused = await sql.pool.fetch(
        "SELECT data FROM task_event WHERE subject = $1 AND type = 'dev.todo.recurring-task.updated'",
        broken["id"],
    )
    assert len(paused) == 1
    assert await tick(at(1, 11, 30), batch=10) == Materialized(3, 3, 0, 0, 0)  # not claimed again


async def test_unpausing_or_moving_a_series_to_a_zone_where_it_never_fires_is_422(
    sql: Sql, user: str
) -> None:
    series = await create(user, at(1, 8), schedule=GAP_ONLY, paused=True)
    with pytest.raises(Unprocessable, match="never fires in America/New_York"):
        await update(user, series, at(1, 9), timezone="America/New_York", paused=False)
    await sql.pool.execute(
        "UPDATE recurring_task SET timezone = 'America/New_York' WHERE id = $1", uuid.UUID(series["id"])
    )
    with pytest.raises(Unprocessable, match="never fires"):
        await update(user, series, at(1, 9), paused=False)
    assert (await row(sql, series))["version"] == 1 and (await row(sql, series))["paused"] is True


# --- series in projects -----------------------------------------------------------------------------


async def team_project(alice: Api, owner: str, **roles: str) -> str:
    """A project of `owner`'s, with each member (user id) in its role."""
    api = alice.as_user(owner)
    project = (await api.post("/api/projects", json={"name": "chores"})).json()["id"]
    for member, role in roles.items():
        body = {"user_id": member, "role": role}
        assert (await api.post(f"/api/projects/{project}/members", json=body)).status_code == 201
    return str(project)


async def series_events(series: dict[str, Any]) -> list[tuple[str, list[str]]]:
    async with get_sessionmaker()() as session:
        stmt = select(TaskEvent).where(TaskEvent.subject == series["id"]).order_by(TaskEvent.sequence)
        return [(e.type, e.data.get("changed", [])) for e in (await session.execute(stmt)).scalars()]


async def test_a_projects_series_puts_its_occurrences_there_for_its_assignee_and_any_member_finishes_them(
    alice: Api, sql: Sql, users: Callable[[], str]
) -> None:
    owner, member = users(), users()
    project = await team_project(alice, owner, **{member: "editor"})
    series = await create(
        owner, at(1, 8), schedule="0 9 * * *", anchor="completion", project_id=project, assignee_id=member
    )
    assert (series["project_id"], series["assignee_id"]) == (project, member)
    [first] = await occurrences(sql, series)
    assert (str(first["project_id"]), first["assignee_id"], first["user_id"]) == (project, member, owner)

    successor = await deliver(await complete(member, first["id"]))  # the assignee finishes it

    assert successor is not None and successor.project_id == uuid.UUID(project)
    assert await times(sql, series) == [at(1, 9), at(2, 9)]


async def test_a_series_goes_only_where_its_owner_may_add_tasks_and_to_a_member(
    alice: Api, sql: Sql, users: Callable[[], str]
) -> None:
    owner, viewer, stranger = users(), users(), users()
    project = await team_project(alice, owner, **{viewer: "viewer"})
    with pytest.raises(NotFound):
        await create(stranger, at(1, 8), schedule="0 9 * * *", project_id=project)
    with pytest.raises(Forbidden):
        await create(viewer, at(1, 8), schedule="0 9 * * *", project_id=project)
    with pytest.raises(Unprocessable) as refused:
        await create(owner, at(1, 8), schedule="0 9 * * *", project_id=project, assignee_id=stranger)
    assert refused.value.field == "assignee_id"
    with pytest.raises(Unprocessable):
        await create(owner, at(1, 8), schedule="0 9 * * *", assignee_id=viewer)  # an inbox's: its owner
    series = await create(owner, at(1, 8), schedule="0 9 * * *")
    with pytest.raises(NotFound):
        await update(stranger, series, at(1, 8), project_id=project)
    moved = await update(owner, series, at(1, 8), project_id=project, assignee_id=viewer)
    assert (moved["project_id"], moved["assignee_id"]) == (project, viewer)
    assert (
        await sql.pool.fetchval(
            "SELECT count(*) FROM recurring_task WHERE user_id = ANY($1)", [viewer, stranger]
        )
        == 0
    )


async def test_a_series_whose_assignee_or_owner_left_or_whose_project_is_gone_adapts_when_it_fires(
    alice: Api, sql: Sql, users: Callable[[], str]
) -> None:
    owner, member, assignee = users(), users(), users()
    project = await team_project(alice, owner, **{member: "editor", assignee: "editor"})
    api = alice.as_user(owner)
    members = f"/api/projects/{project}/members"
    kept = await create(owner, at(1, 8), schedule="0 9 * * *", project_id=project, assignee_id=assignee)
    orphaned = await create(member, at(1, 8), schedule="0 9 * * *", project_id=project)
    assert (await api.delete(f"{members}/{assignee}")).status_code == 204
    assert (await api.delete(f"{members}/{member}")).status_code == 204

    done = await tick(at(1, 9, 1))

    assert done.paused == 1 and done.created == 1
    [_, second] = await occurrences(sql, kept)
    assert second["assignee_id"] is None and (await row(sql, kept))["assignee_id"] is None
    assert (await row(sql, orphaned))["paused"] is True and await times(sql, orphaned) == [at(1, 9)]
    assert ("dev.todo.recurring-task.updated", ["assignee_id"]) in await series_events(kept)
    assert ("dev.todo.recurring-task.updated", ["paused"]) in await series_events(orphaned)

    assert (await api.delete(f"/api/projects/{project}")).status_code == 204
    assert (await tick(at(2, 9, 1))).paused == 1
    assert (await row(sql, kept))["paused"] is True
    with pytest.raises(NotFound):  # unpausing into a project that is gone
        await update(owner, kept, at(2, 10), paused=False)
    back = await update(owner, kept, at(2, 10), paused=False, project_id=None)
    assert back["project_id"] is None and not back["paused"]


async def test_a_series_moved_to_another_project_hands_on_from_an_occurrence_left_behind(
    alice: Api, sql: Sql, users: Callable[[], str]
) -> None:
    owner, member = users(), users()
    first = await team_project(alice, owner, **{member: "editor"})
    second = await team_project(alice, owner, **{member: "editor"})
    series = await create(owner, at(1, 8), schedule="0 9 * * *", anchor="completion", project_id=first)
    await update(owner, series, at(1, 8), project_id=second)
    [left_behind] = await occurrences(sql, series)
    assert left_behind["project_id"] == uuid.UUID(first)

    successor = await deliver(await complete(member, left_behind["id"]))

    assert successor is not None and successor.project_id == uuid.UUID(second)


async def test_a_series_its_owner_can_no_longer_fill_is_still_theirs_to_edit_but_not_to_resume(
    alice: Api, users: Callable[[], str]
) -> None:
    owner, member = users(), users()
    project = await team_project(alice, owner, **{member: "editor"})
    series = await create(member, at(1, 8), schedule="0 9 * * *", project_id=project)
    api = alice.as_user(owner)
    demote = {"role": "viewer"}
    assert (await api.patch(f"/api/projects/{project}/members/{member}", json=demote)).status_code == 200
    await tick(at(1, 9, 1))  # paused: a viewer adds no tasks

    renamed = await update(member, series, at(1, 10), title="renamed")
    assert renamed["title"] == "renamed" and renamed["paused"]
    with pytest.raises(Forbidden):
        await update(member, series, at(1, 10), paused=False)


async def test_an_occurrence_is_never_reminded_the_moment_it_is_created(sql: Sql, user: str) -> None:
    # Daily at 09:00 with the default lead of a day: the next occurrence is created as the last one
    # passes, a day ahead, so its reminder would fall due at once. It comes when it is due instead.
    series = await create(user, at(1, 8), schedule="0 9 * * *")
    await tick(at(1, 9, 0, 30))

    [first, second] = await occurrences(sql, series)
    assert (first["remind_at"], second["remind_at"]) == (at(1, 9), at(2, 9))
    assert (
        await sql.pool.fetchval(
            "SELECT count(*) FROM armed_reminder WHERE task_id = $1 AND fire_at <= $2",
            second["id"],
            at(1, 9, 0, 30),
        )
        == 0
    )  # nothing for a tick at its creation to fire
    # A lead that stays ahead of the creation is kept as it is.
    hourly = await create(user, at(1, 8), schedule="0 9 * * *", remind_before_minutes=60)
    await tick(at(1, 9, 0, 30))
    [_, later] = await occurrences(sql, hourly)
    assert later["remind_at"] == later["due_date"] - HOUR
