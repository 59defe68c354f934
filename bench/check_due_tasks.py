"""check-due-tasks as the task table grows 10x with the due reminders fixed: time per tick, big / small.

Two databases on one PostgreSQL, laid alike but for their size: 100,000 and 1,000,000 tasks with
10,000 reminders due in each (10,000 and 100,000 with 1,000 due with --quick). The shared tick,
`reminders.check_due_tasks`, runs with the default batch size until every due reminder is claimed, on
the two databases in turn; the ratio of their times is the result (goal: about 1.0, a flat tick).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import harness
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.sql.expression import ClauseElement

from todo_backend.db import async_url
from todo_backend.models import TaskEvent
from todo_backend.reminders import CheckDueTasks, check_due_tasks, claim_due
from todo_backend.uow import UnitOfWork

USERS = 1000
BATCH = 500  # Settings.reminder_batch_size's default, what the function passes
# The tick's `now`, fixed for the whole run so the set of due reminders does not drift while it runs.
NOW = datetime.now(UTC).replace(microsecond=0)

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
class Size:
    name: str
    total: int
    due: int
    url: str
    sessions: async_sessionmaker[AsyncSession] | None = None
    load_seconds: float = 0.0
    ticks: list[float] = field(default_factory=list)
    tick_counts: list[int] = field(default_factory=list)
    batches: int = 0
    idle: list[float] = field(default_factory=list)
    wal: list[int] = field(default_factory=list)  # bytes of WAL per tick: full-page images grow it
    buffers: int = 0  # shared buffers the first batch's claim touched
    plan: str = ""


async def no_publish(rows: Sequence[TaskEvent]) -> None:
    """The broker is left out (as with KAFKA_BOOTSTRAP_SERVERS unset): the outbox rows are written, the
    events wait for relay-outbox. Publishing costs the same per reminder however large the table is."""


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
        await conn.execute("VACUUM (ANALYZE) task")
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
        await conn.execute("TRUNCATE task_event")
        await conn.execute("VACUUM (ANALYZE) task")
    finally:
        await conn.close()


async def explain(url: str, statement: ClauseElement) -> tuple[int, str]:
    """`statement` under EXPLAIN (ANALYZE, BUFFERS), rolled back: the shared buffers it touched, and its
    plan with each node's buffers. Run with literal values, so this is the plan a custom plan gets."""
    sql = statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    conn = await asyncpg.connect(url)
    try:
        tx = conn.transaction()
        await tx.start()
        try:
            plan = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
        finally:
            await tx.rollback()  # a claim must not stick
    finally:
        await conn.close()
    root = json.loads(plan)[0]["Plan"]
    return _buffers(root), " > ".join(_nodes(root))


def _buffers(node: dict[str, Any]) -> int:
    return int(node.get("Shared Hit Blocks", 0)) + int(node.get("Shared Read Blocks", 0))


def _nodes(node: dict[str, Any]) -> list[str]:
    """Each plan node with the shared buffers it and its children touched."""
    on = node.get("Index Name") or node.get("Relation Name")
    name = node["Node Type"] + (f" on {on}" if on else "") + f" ({_buffers(node):,})"
    return [name, *(n for child in node.get("Plans", []) for n in _nodes(child))]


async def wal_position(url: str) -> int:
    """The server's WAL insert position in bytes: the difference around a tick is the WAL it wrote."""
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"))
    finally:
        await conn.close()


async def tick_until_drained(size: Size) -> tuple[float, int, int]:
    """Ticks until every due reminder is claimed: (seconds, ticks, batches)."""
    assert size.sessions is not None
    reminded = ticks = batches = 0
    wal_before = await wal_position(size.url)
    started = time.perf_counter()
    while reminded < size.due and ticks < 10:  # one tick drains it well inside its budget; 10 bounds it
        result = await check_due_tasks(
            CheckDueTasks(batch_size=BATCH, now=NOW), UnitOfWork(size.sessions, "check-due-tasks"), no_publish
        )
        reminded, ticks, batches = reminded + result.reminded, ticks + 1, batches + result.batches
    seconds = time.perf_counter() - started
    size.wal.append(await wal_position(size.url) - wal_before)
    assert reminded == size.due, f"{size.name}: {reminded} reminded after {ticks} ticks, expected {size.due}"
    return seconds, ticks, batches


async def idle_tick(size: Size) -> float:
    """A tick with nothing due (its clock set before the earliest due reminder): the every-minute case."""
    assert size.sessions is not None
    started = time.perf_counter()
    result = await check_due_tasks(
        CheckDueTasks(batch_size=BATCH, now=NOW - timedelta(days=3)),
        UnitOfWork(size.sessions, "check-due-tasks"),
        no_publish,
    )
    assert result.reminded == 0
    return time.perf_counter() - started


@contextlib.asynccontextmanager
async def engines(urls: Sequence[str]) -> AsyncIterator[list[async_sessionmaker[AsyncSession]]]:
    """A session factory per database, each engine as db.get_engine builds it for a function process."""
    made = [
        create_async_engine(async_url(url), pool_size=2, max_overflow=3, pool_pre_ping=True) for url in urls
    ]
    try:
        yield [async_sessionmaker(engine, expire_on_commit=False) for engine in made]
    finally:
        for engine in made:
            await engine.dispose()


async def measure(sizes: list[Size], rounds: int) -> None:
    for size in sizes:
        await load(size)
        size.buffers, size.plan = await explain(size.url, claim_due(NOW, BATCH))
        await reset(size)  # vacuums the row versions the rolled-back claim left
    async with engines([size.url for size in sizes]) as factories:
        for size, sessions in zip(sizes, factories, strict=True):
            size.sessions = sessions
        for size in sizes:  # unmeasured: first connections, statement caches, the page cache
            await tick_until_drained(size)
            await reset(size)
        for n in range(rounds):
            # Alternating which goes first, so drift in the machine's load falls on both sides alike.
            for size in sizes if n % 2 == 0 else sizes[::-1]:
                seconds, ticks, batches = await tick_until_drained(size)
                size.ticks.append(seconds)
                size.tick_counts.append(ticks)
                size.batches = batches
                await reset(size)
                size.idle.append(min([await idle_tick(size) for _ in range(5)]))


@contextlib.contextmanager
def second_database(url: str, name: str) -> Iterator[str]:
    """A database beside `url`'s on the same server, migrated; dropped again at the end."""
    from todo_backend.migrations import upgrade

    other = urlunsplit(urlsplit(url)._replace(path=f"/{name}"))

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}"'))
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(other)
        yield other
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def refuse_used(url: str, table: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):  # noqa: S608 - our own table name
            raise SystemExit(f"{table} is not empty: point DATABASE_URL at a disposable database")
    finally:
        await conn.close()


def main() -> None:
    args = harness.arguments(__doc__ or "")
    small_total, big_total, due = (10_000, 100_000, 1_000) if args.quick else (100_000, 1_000_000, 10_000)
    rounds = 5
    load_at_start = harness.load_average()
    os.environ.pop("METRICS_PORT", None)
    with (
        harness.services(broker=False) as servers,
        second_database(servers.database_url, "bench_big") as big_url,
    ):
        # Settings are read once per process (the tick's metrics read them); no broker: see no_publish.
        os.environ.update(DATABASE_URL=servers.database_url, JWT_SECRET=harness.JWT_SECRET, TODO_ENV="local")
        asyncio.run(refuse_used(servers.database_url, "task"))
        sizes = [Size("small", small_total, due, servers.database_url), Size("big", big_total, due, big_url)]
        asyncio.run(measure(sizes, rounds))
    report(sizes, load_at_start)


def report(sizes: list[Size], load_at_start: float) -> None:
    rows = []
    for size in sizes:
        tick = harness.median(size.ticks)
        rows.append(
            [
                size.name,
                f"{size.total:,}",
                f"{size.due:,}",
                f"{size.load_seconds:.0f}",
                f"{max(size.tick_counts)}/{size.batches}",
                tick * 1000,
                min(size.ticks) * 1000,
                tick / size.due * 1e6,
                harness.median(size.idle) * 1000,
                harness.median(size.wal) / 2**20,
                size.buffers,
            ]
        )
    print(
        f"check_due_tasks: one tick (batches of {BATCH}) until every due reminder is claimed; "
        f"no broker (outbox rows written, not published); median of {len(sizes[0].ticks)} rounds"
    )
    print(
        harness.table(
            [
                "size",
                "tasks",
                "due",
                "load s",
                "ticks/batches",
                "tick ms",
                "min ms",
                "us/reminder",
                "idle tick ms",
                "WAL MB",
                "claim buffers",
            ],
            rows,
        )
    )
    for size in sizes:
        print(f"  {size.name}: first claim's plan (shared buffers): {size.plan}")
    small, big = sizes
    tick_ratio = harness.median(big.ticks) / harness.median(small.ticks)
    idle_ratio = harness.median(big.idle) / harness.median(small.idle)
    print(harness.machine_note(load_at_start))
    print(
        f"check_due_tasks: {big.total:,} vs {small.total:,} tasks, {small.due:,} due: big/small "
        f"time per tick {tick_ratio:.2f} (of the fastest rounds {min(big.ticks) / min(small.ticks):.2f}), "
        f"idle tick {idle_ratio:.2f}, "
        f"claim buffers {big.buffers / max(small.buffers, 1):.2f} (goal about 1.0: flat)"
    )


if __name__ == "__main__":
    main()
