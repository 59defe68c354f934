"""check-due-tasks as the task table grows 10x with the due reminders fixed: time per tick, big / small.

Two databases on one PostgreSQL, laid alike but for their size: 100,000 and 1,000,000 tasks with
10,000 reminders due in each (10,000 and 100,000 with 1,000 due with --quick). The shared tick,
`reminders.check_due_tasks`, runs with the default batch size until every due reminder is claimed, on
the two databases in turn; the ratio of their times is the result (goal: about 1.0, a flat tick).
The tick runs outside the entry's collecting_commits, so the broker is left out: the outbox rows are
written and wait for relay-outbox. Publishing costs the same per reminder however large the table is.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
import harness
from harness import NOW, USERS

from todo_backend.reminders import CheckDueTasks, check_due_tasks, claim_due
from todo_backend.settings import get_settings
from todo_backend.uow import UnitOfWork

BATCH = 500  # Settings.reminder_batch_size's default, what the function passes

# A table of `total` tasks, `due` of them spread evenly through it (as creation order scatters them
# through the heap), the others by a random draw: 20% without a due date, 15% completed, 15% reminded
# already, 50% open with a reminder in the future. 1,000 users; mixed lead times (null: the default).
LOAD = """
INSERT INTO task (id, user_id, title, description, completed, completed_at, due_date, priority, tags,
                  remind_before_minutes, reminded_at, remind_at, created_at, updated_at, version)
SELECT gen_random_uuid(), 'user-' || floor(random() * $4)::int, 'task ' || i,
       CASE WHEN i % 3 = 0 THEN 'notes for task ' || i ELSE '' END,
       kind = 'completed', CASE WHEN kind = 'completed' THEN due - interval '1 hour' END,
       due, (ARRAY['low', 'medium', 'high'])[1 + i % 3]::task_priority,
       CASE WHEN r2 < 0.2 THEN ARRAY['work'] WHEN r2 < 0.3 THEN ARRAY['home', 'errand'] ELSE '{}' END,
       lead, CASE WHEN kind IN ('completed', 'reminded') THEN due - make_interval(mins => lead_or_default)
                  + interval '30 seconds' END,
       due - make_interval(mins => lead_or_default),
       created, created, 1
FROM (
    SELECT i, kind, lead, coalesce(lead, 1440) AS lead_or_default, created, random() AS r2,
           CASE kind
               WHEN 'undated' THEN NULL
               -- due: the reminder fell due up to two days before now
               WHEN 'due' THEN $3::timestamptz - random() * interval '2 days' - interval '1 second'
                               + make_interval(mins => coalesce(lead, 1440))
               WHEN 'future' THEN $3::timestamptz + interval '1 hour' + random() * interval '180 days'
                                  + make_interval(mins => coalesce(lead, 1440))
               ELSE $3::timestamptz - interval '1 day' - random() * interval '60 days'
           END AS due
    FROM (
        SELECT i,
               CASE WHEN i % ($1 / $2) = 0 THEN 'due'
                    WHEN r < 0.20 THEN 'undated' WHEN r < 0.35 THEN 'completed'
                    WHEN r < 0.50 THEN 'reminded' ELSE 'future' END AS kind,
               (ARRAY[NULL, NULL, 15, 60, 1440])[1 + floor(random() * 5)::int] AS lead,
               $3::timestamptz - interval '400 days' + random() * interval '200 days' AS created
        FROM (SELECT i, random() AS r FROM generate_series(1, $1) i) numbered
    ) drawn
) dated
"""


@dataclass
class Size(harness.Size):
    batches: int = 0
    wal: list[int] = field(default_factory=list)  # bytes of WAL per tick: full-page images grow it


async def load(size: Size) -> None:
    """Lay the table with the secondary indexes dropped and rebuilt after (as a bulk load would), then
    VACUUM ANALYZE so both databases start with hint bits set, visibility maps full, statistics fresh."""
    started = time.perf_counter()
    conn = await asyncpg.connect(size.url)
    try:
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = 'public' AND tablename = 'task' AND indexname <> 'task_pkey'"
        )
        for row in indexes:
            await conn.execute(f'DROP INDEX "{row["indexname"]}"')
        await conn.execute("SET maintenance_work_mem = '256MB'")
        await conn.execute("SELECT setseed(0.42)")
        await conn.execute(LOAD, size.total, size.due, NOW, USERS)
        for row in indexes:
            await conn.execute(row["indexdef"])
        await conn.execute("VACUUM (ANALYZE) task, armed_reminder")
        due = await conn.fetchval(
            "SELECT count(*) FROM task WHERE NOT completed AND reminded_at IS NULL AND remind_at <= $1", NOW
        )
        assert due == size.due, f"{size.name}: {due} due, expected {size.due}"
    finally:
        await conn.close()
    size.load_seconds = time.perf_counter() - started


async def reset(size: Size) -> None:
    """Undo a tick: its claims and its outbox rows; VACUUM so the next tick finds the same table."""
    conn = await asyncpg.connect(size.url)
    try:
        await conn.execute("UPDATE task SET reminded_at = NULL WHERE reminded_at = $1", NOW)
        await conn.execute("TRUNCATE task_event, outbox")
        await conn.execute("VACUUM (ANALYZE) task, armed_reminder")
    finally:
        await conn.close()


async def wal_position(url: str) -> int:
    """The server's WAL insert position in bytes: the difference around a tick is the WAL it wrote."""
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"))
    finally:
        await conn.close()


async def tick_until_drained(size: Size) -> tuple[float, int]:
    """Ticks until every due reminder is claimed: (seconds, ticks); notes the batches and the WAL."""
    assert size.sessions is not None
    reminded = ticks = batches = 0
    wal_before = await wal_position(size.url)
    started = time.perf_counter()
    while reminded < size.due and ticks < 10:  # one tick drains it well inside its budget; 10 bounds it
        result = await check_due_tasks(
            CheckDueTasks(batch_size=BATCH, now=NOW),
            UnitOfWork(size.sessions, "check-due-tasks", get_settings()),
        )
        reminded, ticks, batches = reminded + result.reminded, ticks + 1, batches + result.batches
    seconds = time.perf_counter() - started
    size.wal.append(await wal_position(size.url) - wal_before)
    size.batches = batches
    assert reminded == size.due, f"{size.name}: {reminded} reminded after {ticks} ticks, expected {size.due}"
    return seconds, ticks


async def idle_tick(size: Size) -> float:
    """A tick with nothing due (its clock set before the earliest due reminder): the every-minute case."""
    assert size.sessions is not None
    started = time.perf_counter()
    result = await check_due_tasks(
        CheckDueTasks(batch_size=BATCH, now=NOW - timedelta(days=3)),
        UnitOfWork(size.sessions, "check-due-tasks", get_settings()),
    )
    assert result.reminded == 0
    return time.perf_counter() - started


def main() -> None:
    args = harness.arguments(__doc__ or "")
    small_total, big_total, due = (10_000, 100_000, 1_000) if args.quick else (100_000, 1_000_000, 10_000)
    load_at_start = harness.load_average()
    with harness.two_databases("task") as (small_url, big_url):
        sizes = [Size("small", small_total, due, small_url), Size("big", big_total, due, big_url)]
        asyncio.run(
            harness.measure_ticks(sizes, claim_due(NOW, BATCH), load, reset, tick_until_drained, idle_tick)
        )
    report(sizes, load_at_start)


def report(sizes: list[Size], load_at_start: float) -> None:
    print(
        f"check_due_tasks: one tick (batches of {BATCH}) until every due reminder is claimed; "
        f"no broker (outbox rows written, not published); median of {len(sizes[0].ticks)} rounds"
    )
    extra = [
        ("batches", lambda size: size.batches),
        ("WAL MB", lambda size: harness.median(size.wal) / 2**20),
    ]
    print(harness.tick_table(sizes, "tasks", "reminder", extra))
    print(harness.tick_ratios("check_due_tasks", "tasks", sizes, load_at_start))


if __name__ == "__main__":
    main()
