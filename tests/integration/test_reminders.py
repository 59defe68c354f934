"""Reminders over real PostgreSQL: the checker claims each due reminder exactly once, however many run,
catches up after an outage, follows due-date changes, and writes reminder.due events to the outbox.

Ticks see every due task in the shared test database, so assertions look only at this test's tasks.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from taskapi import Api, Sql

from todo_backend.bootstrap import unit_of_work
from todo_backend.fields import rfc3339, utcnow
from todo_backend.messaging import topic_for
from todo_backend.models import TaskEvent
from todo_backend.reminders import CheckDueTasks, CheckResult, check_due_tasks, claim_due
from todo_backend.settings import get_settings
from todo_backend.stored import to_cloudevent_json

REMINDER_DUE = "dev.todo.reminder.due"


async def tick(
    now: datetime | None = None, batch_size: int = 500, budget_seconds: float = 20.0
) -> CheckResult:
    """One checker tick on its own unit of work (so its own connections), as the cron function runs it."""
    cmd = CheckDueTasks(batch_size, now or utcnow(), budget_seconds)
    return await check_due_tasks(cmd, unit_of_work("check-due-tasks"))


async def insert_due_tasks(
    sql: Sql, user_id: str, count: int, first_remind_at: datetime, step: timedelta = timedelta(seconds=1)
) -> list[uuid.UUID]:
    """`count` open tasks in one INSERT, reminders due from `first_remind_at` on, `step` apart (30 minutes
    before each due date); their ids, oldest reminder first."""
    rows = await sql.pool.fetch(
        """
        INSERT INTO task (id, user_id, title, due_date, remind_before_minutes, remind_at,
                          created_at, updated_at)
        SELECT gen_random_uuid(), $1, 'task ' || i, at + interval '30 minutes', 30, at, now(), now()
        FROM generate_series(0, $4 - 1) AS i, LATERAL (SELECT $2::timestamptz + i * $3::interval AS at) r
        RETURNING id, remind_at
        """,
        user_id,
        first_remind_at,
        step,
        count,
    )
    return [row["id"] for row in sorted(rows, key=lambda r: r["remind_at"])]


async def reminders_of(sql: Sql, task_ids: list[Any]) -> list[asyncpg.Record]:
    """The reminder.due outbox rows of these tasks, in commit order."""
    return await sql.pool.fetch(
        "SELECT * FROM task_event WHERE type = $1 AND subject = ANY($2::text[]) ORDER BY sequence",
        REMINDER_DUE,
        [str(t) for t in task_ids],
    )


def at(moment: datetime) -> str:
    return moment.isoformat()


# --- exactly once ---------------------------------------------------------------------------------------


async def test_four_checkers_racing_over_a_thousand_due_tasks_emit_each_reminder_exactly_once(
    sql: Sql,
) -> None:
    user = f"user-{uuid.uuid4()}"
    task_ids = await insert_due_tasks(
        sql, user, 1000, utcnow() - timedelta(hours=1), timedelta(milliseconds=1)
    )

    results = await asyncio.gather(*(tick(batch_size=100) for _ in range(4)))

    events = await reminders_of(sql, task_ids)
    assert len(events) == 1000
    assert {e["subject"] for e in events} == {str(t) for t in task_ids}  # each task once, none twice
    unreminded = await sql.pool.fetchval(
        "SELECT count(*) FROM task WHERE user_id = $1 AND reminded_at IS NULL", user
    )
    assert unreminded == 0
    assert sum(r.reminded for r in results) >= 1000  # (other tests' due tasks may be among them)
    assert sum(1 for r in results if r.reminded) >= 2, "the checkers did not actually overlap"


async def test_a_second_tick_emits_nothing_for_reminders_already_sent(sql: Sql) -> None:
    task_ids = await insert_due_tasks(sql, f"user-{uuid.uuid4()}", 3, utcnow() - timedelta(minutes=5))
    await tick()
    await tick()
    assert len(await reminders_of(sql, task_ids)) == 3


# --- catch-up, re-arming, and who gets none ---------------------------------------------------------------


async def test_reminders_missed_during_an_outage_are_sent_once_late_unless_completed_or_deleted(
    alice: Api, sql: Sql
) -> None:
    now = utcnow()
    # Created before the outage; their reminders fell due 5, 3 and 1 hours ago while no checker ran.
    missed = [
        await alice.create(
            title=f"missed {h}h",
            due_date=at(now - timedelta(hours=h) + timedelta(minutes=30)),
            remind_before_minutes=30,
        )
        for h in (5, 3, 1)
    ]
    completed = await alice.create(title="done meanwhile", due_date=at(now - timedelta(hours=2)))
    deleted = await alice.create(title="gone meanwhile", due_date=at(now - timedelta(hours=2)))
    assert (await alice.post(f"/api/tasks/{completed['id']}/complete")).status_code == 200
    assert (await alice.delete(f"/api/tasks/{deleted['id']}")).status_code == 204

    await tick()  # the checker is back
    await tick()

    events = await reminders_of(sql, [t["id"] for t in [*missed, completed, deleted]])
    assert [e["subject"] for e in events] == [t["id"] for t in missed]  # once each, oldest first
    for event, hours in zip(events, (5, 3, 1), strict=True):
        late = event["data"]["late_seconds"]
        assert hours * 3600 - 5 <= late <= hours * 3600 + 60, late
        assert event["data"]["remind_at"] == rfc3339(now - timedelta(hours=hours))


async def test_changing_the_due_date_or_lead_time_rearms_a_sent_reminder(alice: Api, sql: Sql) -> None:
    now = utcnow()
    task = await alice.create(
        title="re-arm me", due_date=at(now + timedelta(minutes=10)), remind_before_minutes=30
    )
    url = f"/api/tasks/{task['id']}"
    await tick(now)
    assert (await alice.get(url)).json()["reminded_at"] == rfc3339(now)

    new_due = now + timedelta(hours=2)
    moved = await alice.patch(url, json={"due_date": at(new_due)})
    assert moved.status_code == 200 and moved.json()["reminded_at"] is None
    await tick(now)  # the new reminder (90 minutes from now) is not due yet
    assert len(await reminders_of(sql, [task["id"]])) == 1
    later = now + timedelta(minutes=95)
    await tick(later)
    events = await reminders_of(sql, [task["id"]])
    assert len(events) == 2
    assert events[1]["data"]["due_at"] == rfc3339(new_due)
    assert events[1]["data"]["remind_at"] == rfc3339(new_due - timedelta(minutes=30))

    # Any other change leaves the sent reminder sent ...
    assert (await alice.patch(url, json={"title": "renamed"})).json()["reminded_at"] == rfc3339(later)
    await tick(later)
    assert len(await reminders_of(sql, [task["id"]])) == 2
    # ... but a new lead time is a new reminder, due at once here (2 h 30 min before the due date).
    assert (await alice.patch(url, json={"remind_before_minutes": 150})).json()["reminded_at"] is None
    await tick(later)
    events = await reminders_of(sql, [task["id"]])
    assert len(events) == 3 and events[2]["data"]["task"]["title"] == "renamed"


async def test_completed_deleted_and_undated_tasks_get_no_reminder(alice: Api, sql: Sql) -> None:
    past_due = at(utcnow() - timedelta(minutes=5))
    control = await alice.create(title="open and overdue", due_date=past_due)
    completed = await alice.create(title="completed", due_date=past_due)
    created_done = await alice.create(title="created completed", due_date=past_due, completed=True)
    deleted = await alice.create(title="deleted", due_date=past_due)
    undated = await alice.create(title="no due date", remind_before_minutes=0)
    await alice.post(f"/api/tasks/{completed['id']}/complete")
    await alice.delete(f"/api/tasks/{deleted['id']}")

    await tick(utcnow() + timedelta(days=1))

    events = await reminders_of(sql, [t["id"] for t in (control, completed, created_done, deleted, undated)])
    assert [e["subject"] for e in events] == [control["id"]]
    for quiet in (completed, created_done, undated):
        assert (await alice.get(f"/api/tasks/{quiet['id']}")).json()["reminded_at"] is None
    row = await sql.task_row(undated["id"])
    assert row is not None and row["remind_at"] is None


async def test_a_tasks_own_lead_time_overrides_the_default_of_a_day(alice: Api, sql: Sql) -> None:
    assert get_settings().default_remind_before_minutes == 1440
    now = utcnow()
    soon = now + timedelta(minutes=90)
    own_long = await alice.create(title="2 h before", due_date=at(soon), remind_before_minutes=120)
    own_short = await alice.create(title="30 min before", due_date=at(soon), remind_before_minutes=30)
    own_zero = await alice.create(title="at the due time", due_date=at(soon), remind_before_minutes=0)
    default_in = await alice.create(title="default, due in 23 h", due_date=at(now + timedelta(hours=23)))
    default_out = await alice.create(title="default, due in 25 h", due_date=at(now + timedelta(hours=25)))
    tasks = [own_long, own_short, own_zero, default_in, default_out]

    async def reminded() -> list[str]:
        return [e["subject"] for e in await reminders_of(sql, [t["id"] for t in tasks])]

    await tick(now)
    assert sorted(await reminded()) == sorted([own_long["id"], default_in["id"]])
    await tick(now + timedelta(minutes=61))
    assert sorted(await reminded()) == sorted(
        [own_long["id"], default_in["id"], own_short["id"], default_out["id"]]
    )
    await tick(now + timedelta(minutes=91))
    assert (await reminded())[-1] == own_zero["id"] and len(await reminded()) == 5

    events = {e["subject"]: e["data"] for e in await reminders_of(sql, [t["id"] for t in tasks])}
    assert events[own_long["id"]]["remind_at"] == rfc3339(soon - timedelta(minutes=120))
    assert events[default_out["id"]]["remind_at"] == rfc3339(now + timedelta(hours=1))
    assert events[own_zero["id"]]["remind_at"] == rfc3339(soon)


# --- the event ------------------------------------------------------------------------------------------


async def test_the_reminder_event_carries_the_task_and_its_timing_keyed_by_the_task_on_the_reminders_topic(
    alice: Api, sql: Sql
) -> None:
    due = utcnow() + timedelta(minutes=40)
    task = await alice.create(title="Call the dentist", due_date=at(due), remind_before_minutes=45)
    await tick()

    [row] = await reminders_of(sql, [task["id"]])
    assert row["type"] == REMINDER_DUE
    assert row["source"] == "/functions/check-due-tasks"
    assert row["subject"] == row["partition_key"] == task["id"]
    assert row["user_id"] == alice.user_id
    now_task = (await alice.get(f"/api/tasks/{task['id']}")).json()
    assert now_task["reminded_at"] is not None
    assert now_task["version"] == task["version"]  # being reminded is no edit: an If-Match still holds
    assert row["data"] == {
        "task": now_task,
        "due_at": rfc3339(due),
        "remind_at": rfc3339(due - timedelta(minutes=45)),
        "late_seconds": row["data"]["late_seconds"],
    }
    assert 300 <= row["data"]["late_seconds"] <= 360  # due 5 minutes before it was created

    stored = TaskEvent(
        **{k: row[k] for k in ("id", "type", "source", "subject", "time", "partition_key", "user_id", "data")}
    )
    cloudevent = to_cloudevent_json(stored)
    assert (cloudevent["partitionkey"], cloudevent["userid"]) == (task["id"], alice.user_id)
    settings = get_settings()
    assert topic_for(row["type"], settings) == settings.topic_reminders != settings.topic_task_events

    history = (await alice.get(f"/api/tasks/{task['id']}/events")).json()["items"]
    assert [e["type"] for e in history] == ["dev.todo.task.created", REMINDER_DUE]


# --- bounded, indexed work ---------------------------------------------------------------------------------


async def test_a_backlog_larger_than_a_batch_is_drained_oldest_first_over_several_ticks(sql: Sql) -> None:
    # Older than any other test's reminders, so these come first in every tick.
    ancient = datetime(1990, 1, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 1000)
    task_ids = await insert_due_tasks(sql, f"user-{uuid.uuid4()}", 25, ancient, timedelta(minutes=1))

    first = await tick(batch_size=10, budget_seconds=0)  # one batch per tick
    assert (first.reminded, first.batches, first.drained) == (10, 1, False)
    assert [e["subject"] for e in await reminders_of(sql, task_ids)] == [str(t) for t in task_ids[:10]]
    await tick(batch_size=10, budget_seconds=0)
    assert [e["subject"] for e in await reminders_of(sql, task_ids)] == [str(t) for t in task_ids[:20]]
    await tick(batch_size=10, budget_seconds=0)
    assert [e["subject"] for e in await reminders_of(sql, task_ids)] == [str(t) for t in task_ids]


async def test_a_tick_with_time_to_spare_takes_batch_after_batch_until_none_is_due(sql: Sql) -> None:
    ancient = datetime(1980, 1, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 1000)
    task_ids = await insert_due_tasks(sql, f"user-{uuid.uuid4()}", 25, ancient, timedelta(minutes=1))
    result = await tick(batch_size=10)
    assert result.reminded >= 25 and result.batches >= 3 and result.drained
    assert len(await reminders_of(sql, task_ids)) == 25


async def test_a_task_a_writer_holds_delays_only_itself_not_the_rest_of_the_tick(sql: Sql) -> None:
    ancient = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 1000)
    task_ids = await insert_due_tasks(sql, f"user-{uuid.uuid4()}", 25, ancient, timedelta(minutes=1))
    async with sql.pool.acquire() as writer, writer.transaction():
        await writer.execute("SELECT 1 FROM task WHERE id = $1 FOR UPDATE", task_ids[0])  # a title edit
        result = await tick(batch_size=10)
    assert result.drained and len(await reminders_of(sql, task_ids)) == 24  # every other one, this tick
    await tick()
    assert len(await reminders_of(sql, task_ids)) == 25


async def test_the_checkers_scan_walks_the_armed_reminders_by_when_they_fall_due(sql: Sql) -> None:
    compiled = claim_due(utcnow(), 500).compile(dialect=asyncpg_dialect.dialect())
    assert compiled.positiontup is not None
    params = [compiled.params[name] for name in compiled.positiontup]
    async with sql.pool.acquire() as connection, connection.transaction():
        # Whatever the tables' sizes: the due armed rows by their index, their tasks by primary key.
        await connection.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(row[0] for row in await connection.fetch("EXPLAIN " + str(compiled), *params))
    assert "ix_armed_reminder_fire_at" in plan and "task_pkey" in plan, plan
    assert "Seq Scan" not in plan, plan


# --- the function ---------------------------------------------------------------------------------------


@pytest.fixture
def checker(function_clients: dict[str, httpx.AsyncClient]) -> httpx.AsyncClient:
    """check-due-tasks' functions-framework app, in process."""
    return function_clients["check-due-tasks"]


async def test_the_cron_function_needs_no_token_and_answers_json_counts(
    checker: httpx.AsyncClient, alice: Api, sql: Sql
) -> None:
    task = await alice.create(title="ping me", due_date=at(utcnow() + timedelta(minutes=5)))
    ping = {
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-type": "dev.knative.sources.ping",
        "ce-source": "/test",
        "content-type": "application/json",
    }
    response = await checker.post("/", headers=ping, content=b"{}")
    assert response.status_code == 200, response.text
    counts = response.json()
    assert set(counts) == {"reminded", "batches", "drained"}
    assert counts["reminded"] >= 1 and counts["batches"] >= 1 and counts["drained"] is True
    assert [e["subject"] for e in await reminders_of(sql, [task["id"]])] == [task["id"]]


# --- the armed reminders: kept by the trigger, whoever writes -----------------------------------------

ARMED_DRIFT = """
SELECT count(*) FROM task t FULL JOIN armed_reminder a ON a.task_id = t.id
WHERE (t.id IS NULL OR t.user_id = $1)
  AND (a.task_id IS NULL) <> (t.id IS NULL OR t.completed OR t.reminded_at IS NOT NULL OR t.remind_at IS NULL)
   OR (a.task_id IS NOT NULL AND t.id IS NOT NULL AND t.user_id = $1 AND a.fire_at <> t.remind_at)
"""

ACTIONS = ["create", "create-undated", "redate", "undate", "lead", "complete", "reopen", "delete", "tick"]
STEPS = st.lists(st.sampled_from([*ACTIONS, "sql-remind"]), min_size=1, max_size=12)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS, picks=st.lists(st.integers(0, 50), min_size=12, max_size=12))
async def test_a_task_is_armed_exactly_while_its_reminder_waits_whoever_writes_it(
    alice: Api, sql: Sql, steps: list[str], picks: list[int]
) -> None:
    user = alice.as_user(f"armed-{uuid.uuid4()}")
    tasks: list[str] = []
    soon = utcnow() + timedelta(minutes=30)
    for step, pick in zip(steps, picks, strict=False):
        task = tasks[pick % len(tasks)] if tasks else None
        url = f"/api/tasks/{task}"
        if step.startswith("create") or task is None:
            body = (
                {"title": "t"} if step == "create-undated" else {"title": "t", "due_date": soon.isoformat()}
            )
            tasks.append((await user.post("/api/tasks", json=body)).json()["id"])
        elif step == "redate":
            later = soon + timedelta(days=pick)
            assert (await user.patch(url, json={"due_date": later.isoformat()})).status_code == 200
        elif step == "undate":
            assert (await user.patch(url, json={"due_date": None})).status_code == 200
        elif step == "lead":
            assert (await user.patch(url, json={"remind_before_minutes": pick})).status_code == 200
        elif step in ("complete", "reopen"):
            assert (await user.patch(url, json={"completed": step == "complete"})).status_code == 200
        elif step == "delete":
            assert (await user.delete(url)).status_code == 204
            tasks.remove(task)
        elif step == "tick":
            await tick()
        else:  # a writer that is not this code: plain SQL
            await sql.pool.execute("UPDATE task SET reminded_at = now() WHERE id = $1", uuid.UUID(task))
        assert await sql.pool.fetchval(ARMED_DRIFT, user.user_id) == 0, step


async def test_a_reminder_racing_its_tasks_edits_fires_once_and_never_deadlocks(sql: Sql) -> None:
    user = f"user-{uuid.uuid4()}"
    task_ids = await insert_due_tasks(sql, user, 200, utcnow() - timedelta(minutes=10))

    async def edit() -> None:
        for task_id in task_ids:
            await sql.pool.execute(
                "UPDATE task SET remind_at = remind_at - interval '1 second', reminded_at = NULL"
                " WHERE id = $1 AND reminded_at IS NULL",
                task_id,
            )

    await asyncio.gather(tick(batch_size=20), edit(), tick(batch_size=20))
    await tick()

    events = await reminders_of(sql, task_ids)
    assert sorted(e["subject"] for e in events) == sorted(str(t) for t in task_ids)
    assert await sql.pool.fetchval(ARMED_DRIFT, user) == 0
