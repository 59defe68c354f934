"""materialize-recurrences as the series grow 10x with the due ones fixed: time per tick, big / small.

Two databases on one PostgreSQL, laid alike but for their size: 10,000 and 100,000 recurring tasks with
1,000 due in each (1,000 and 10,000 with 100 due with --quick), each series with its upcoming
occurrence as a task. The shared tick, `recurring.materialize_due`, runs with its default batches until
every due series has its next occurrence, on the two databases in turn; the ratio of their times is the
result (goal: about 1.0, a flat tick).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import harness
from harness import NOW, USERS

from todo_backend.recurrence import Schedule
from todo_backend.recurring import MATERIALIZE_BATCH, _claim_due, materialize_due
from todo_backend.settings import get_settings
from todo_backend.uow import UnitOfWork

SCHEDULES = ("*/5 * * * *", "0 9 * * 1-5", "30 2 * * *")
ZONES = ("America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata", "UTC")

# `total` series, `due` of them spread evenly through the table; the schedule and zone of each drawn
# from the 15 combinations. A due series' upcoming occurrence is its schedule's last firing at or before
# the tick's `now` (it has just passed: nothing was missed); an active one's is its first firing after.
# Of the others: 5% paused, 10% completion-anchored, 5% ended (no upcoming occurrence), 80% active.
LOAD_SERIES = """
INSERT INTO recurring_task (id, user_id, title, description, priority, tags, remind_before_minutes,
                            schedule, timezone, anchor, starts_at, until, max_occurrences, paused,
                            occurrences_created, occurrences_skipped, next_occurrence_at,
                            created_at, updated_at, version)
SELECT gen_random_uuid(), 'user-' || floor(random() * $4)::int, 'series ' || i,
       CASE WHEN i % 3 = 0 THEN 'notes for series ' || i ELSE '' END,
       (ARRAY['low', 'medium', 'high'])[1 + i % 3]::task_priority,
       CASE WHEN r2 < 0.2 THEN ARRAY['work'] WHEN r2 < 0.3 THEN ARRAY['home', 'errand'] ELSE '{}' END,
       (ARRAY[NULL, NULL, 15, 60, 1440])[1 + floor(random() * 5)::int],
       ($5::text[])[c], ($6::text[])[c],
       CASE WHEN kind = 'completion' THEN 'completion' ELSE 'schedule' END::recurrence_anchor,
       created, CASE WHEN r2 < 0.1 THEN $3::timestamptz + interval '365 days' END,
       CASE WHEN r2 BETWEEN 0.1 AND 0.2 THEN 100000 END, kind = 'paused',
       1 + floor(random() * 500)::int, 0,
       CASE kind WHEN 'due' THEN ($7::timestamptz[])[c] WHEN 'ended' THEN NULL
                 ELSE ($8::timestamptz[])[c] END,
       created, created, 1
FROM (
    SELECT i, 1 + floor(random() * cardinality($5::text[]))::int AS c, random() AS r2,
           $3::timestamptz - interval '400 days' + random() * interval '200 days' AS created,
           CASE WHEN i % ($1 / $2) = 0 THEN 'due'
                WHEN r < 0.05 THEN 'paused' WHEN r < 0.15 THEN 'completion'
                WHEN r < 0.20 THEN 'ended' ELSE 'active' END AS kind
    FROM (SELECT i, random() AS r FROM generate_series(1, $1) i) numbered
) drawn
"""
# Each series' upcoming occurrence, as the materializer (or create) made it: an ordinary task.
LOAD_OCCURRENCES = """
INSERT INTO task (id, user_id, title, description, completed, due_date, priority, tags,
                  remind_before_minutes, remind_at, recurring_task_id, occurrence_at,
                  created_at, updated_at, version)
SELECT gen_random_uuid(), user_id, title, description, false, next_occurrence_at, priority, tags,
       remind_before_minutes,
       next_occurrence_at - make_interval(mins => coalesce(remind_before_minutes, 1440)),
       id, next_occurrence_at, created_at, created_at, 1
FROM recurring_task WHERE next_occurrence_at IS NOT NULL
"""


@dataclass
class Size(harness.Size):
    # The due series as laid: (ids, upcoming occurrence, occurrences created), to undo a tick.
    original: tuple[list[Any], list[datetime], list[int]] = field(default_factory=lambda: ([], [], []))


def firings() -> tuple[list[str], list[str], list[datetime], list[datetime]]:
    """Per schedule and zone: the last firing at or before NOW, and the first after it."""
    schedules, zones, last, upcoming = [], [], [], []
    for expression in SCHEDULES:
        for name in ZONES:
            schedule = Schedule.parse(expression, name)
            at = schedule.next_after(NOW - timedelta(days=8))  # every one of them fires within a week
            while (following := schedule.next_after(at)) <= NOW:
                at = following
            schedules.append(expression)
            zones.append(name)
            last.append(at)
            upcoming.append(schedule.next_after(NOW))
    return schedules, zones, last, upcoming


async def load(size: Size) -> None:
    started = time.perf_counter()
    schedules, zones, last, upcoming = firings()
    conn = await asyncpg.connect(size.url)
    try:
        await conn.execute("SELECT setseed(0.42)")
        await conn.execute(LOAD_SERIES, size.total, size.due, NOW, USERS, schedules, zones, last, upcoming)
        await conn.execute(LOAD_OCCURRENCES)
        await conn.execute("VACUUM (ANALYZE) recurring_task, task")
        rows = await conn.fetch(
            "SELECT id, next_occurrence_at, occurrences_created FROM recurring_task"
            " WHERE NOT paused AND anchor = 'schedule' AND next_occurrence_at <= $1",
            NOW,
        )
    finally:
        await conn.close()
    assert len(rows) == size.due, f"{size.name}: {len(rows)} due, expected {size.due}"
    size.original = ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    size.load_seconds = time.perf_counter() - started


async def reset(size: Size) -> None:
    """Undo a tick: the due series' state, the occurrences it created, its outbox rows; then VACUUM."""
    ids, at, created = size.original
    conn = await asyncpg.connect(size.url)
    try:
        await conn.execute(
            "UPDATE recurring_task r SET next_occurrence_at = o.at, occurrences_created = o.created,"
            " occurrences_skipped = 0"
            " FROM unnest($1::uuid[], $2::timestamptz[], $3::int[]) o(id, at, created) WHERE r.id = o.id",
            ids,
            at,
            created,
        )
        await conn.execute(
            "DELETE FROM task t USING unnest($1::uuid[], $2::timestamptz[]) o(id, at)"
            " WHERE t.recurring_task_id = o.id AND t.occurrence_at > o.at",
            ids,
            at,
        )
        await conn.execute("TRUNCATE task_event, outbox")
        await conn.execute("VACUUM (ANALYZE) recurring_task, task")
    finally:
        await conn.close()


async def tick_until_done(size: Size) -> tuple[float, int]:
    """Ticks until every due series has its next occurrence: (seconds, ticks)."""
    assert size.sessions is not None
    due = created = ticks = 0
    started = time.perf_counter()
    while due < size.due and ticks < 10:  # one tick takes up to 1,000 series; 10 bounds it
        result = await materialize_due(
            UnitOfWork(size.sessions, "materialize-recurrences", get_settings()), NOW
        )
        due, created, ticks = due + result.due, created + result.created, ticks + 1
    seconds = time.perf_counter() - started
    assert due == created == size.due, f"{size.name}: {due} due, {created} created, expected {size.due}"
    return seconds, ticks


async def idle_tick(size: Size) -> float:
    """A tick with nothing due (its clock set before every upcoming occurrence): the every-minute case."""
    assert size.sessions is not None
    started = time.perf_counter()
    result = await materialize_due(
        UnitOfWork(size.sessions, "materialize-recurrences", get_settings()), NOW - timedelta(days=30)
    )
    assert result.due == 0
    return time.perf_counter() - started


def main() -> None:
    args = harness.arguments(__doc__ or "")
    small_total, big_total, due = (1_000, 10_000, 100) if args.quick else (10_000, 100_000, 1_000)
    load_at_start = harness.load_average()
    with harness.two_databases("recurring_task") as (small_url, big_url):
        sizes = [Size("small", small_total, due, small_url), Size("big", big_total, due, big_url)]
        claim = _claim_due(NOW, MATERIALIZE_BATCH)
        asyncio.run(harness.measure_ticks(sizes, claim, load, reset, tick_until_done, idle_tick))
    report(sizes, load_at_start)


def report(sizes: list[Size], load_at_start: float) -> None:
    print(
        f"materialize_due: ticks (batches of {MATERIALIZE_BATCH}) until every due series has its next "
        f"occurrence; outbox rows written, not published; median of {len(sizes[0].ticks)} rounds"
    )
    print(harness.tick_table(sizes, "series", "series"))
    print(harness.tick_ratios("materialize", "series", sizes, load_at_start))


if __name__ == "__main__":
    main()
