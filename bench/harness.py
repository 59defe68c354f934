"""What every benchmark shares: --quick, its own PostgreSQL and broker, tokens, and the ratio table;
and what the two tick benchmarks (check_due_tasks.py, materialize.py) share: two sizes of one table.

Not a benchmark itself. The scripts beside it run as `python bench/<name>.py`, which puts this folder
on sys.path, so they import it as `harness`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import jwt
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.sql.expression import ClauseElement

from todo_backend.db import async_url
from todo_backend.devstack.runner import free_port
from todo_backend.settings import LOCAL_JWT_SECRET

# The secret function_env hands the function processes (unless JWT_SECRET is set), so our tokens pass.
JWT_SECRET = os.environ.get("JWT_SECRET") or LOCAL_JWT_SECRET


# A tick is flat when 10x the rows cost it at most this much more time (the machine's noise is ~5%).
FLAT = 1.1


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller run (under ~30 s), for a smoke test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args


def token(sub: str, lifetime: int = 3600) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + lifetime}, JWT_SECRET, algorithm="HS256")


@dataclass(frozen=True)
class Services:
    database_url: str
    bootstrap_servers: str | None
    embedded_broker: bool  # the embedded Tansu rejects the idempotent producer


@contextlib.contextmanager
def services(*, broker: bool) -> Iterator[Services]:
    """DATABASE_URL, or a fresh embedded PostgreSQL in a temp dir; migrated. With `broker`:
    KAFKA_BOOTSTRAP_SERVERS, or a fresh embedded broker. Both on 127.0.0.1, both stopped on exit."""
    from todo_backend.devstack.broker import EmbeddedBroker
    from todo_backend.devstack.postgres import EmbeddedPostgres
    from todo_backend.migrations import upgrade

    with contextlib.ExitStack() as stack:
        url = os.environ.get("DATABASE_URL")
        if not url:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pg-")))
            # An OS-chosen free port: never a PostgreSQL already on this machine (5432 or any other).
            url = stack.enter_context(EmbeddedPostgres(tmp / "data", port=free_port())).url
            assert url is not None
        upgrade(url)
        servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
        embedded = False
        if broker and servers is None:
            servers = stack.enter_context(EmbeddedBroker()).bootstrap_servers
            embedded = True
        yield Services(url, servers if broker else None, embedded)


PGBOUNCER = shutil.which("pgbouncer")


@contextlib.contextmanager
def pgbouncer(url: str, pool_size: int = 20) -> Iterator[str]:
    """PgBouncer (Debian's package) in transaction mode in front of the PostgreSQL at `url`, which must
    take its user without a password (the embedded one does); yields the URL to reach it. Transaction
    mode keeps no prepared statement from one transaction to the next (1.18 has no support for them):
    clients must run with DB_STATEMENT_CACHE=false."""
    assert PGBOUNCER is not None
    server = urlsplit(url)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-pgbouncer-") as tmp:
        ini = Path(tmp) / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={server.hostname} port={server.port} user={server.username}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            "auth_type = any\npool_mode = transaction\n"
            f"default_pool_size = {pool_size}\nmax_client_conn = 500\n"
            "ignore_startup_parameters = extra_float_digits,statement_timeout\n"
        )
        os.chmod(tmp, 0o755)  # noqa: S103  it refuses to run as root: as nobody, it reads its file
        command = [PGBOUNCER, *(["-u", "nobody"] if os.geteuid() == 0 else []), str(ini)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start: {process.stderr and process.stderr.read()}")
                time.sleep(0.05)
            yield urlunsplit(server._replace(netloc=f"{server.username}@127.0.0.1:{port}"))
        finally:
            process.terminate()
            process.wait(10)


def load_average() -> float:
    return os.getloadavg()[0]


def machine_note(load_at_start: float) -> str:
    """Other work on the machine moves both sides of a ratio, but not always equally: say how busy it was."""
    return (
        f"machine: {os.cpu_count()} CPUs, 1-minute load average {load_at_start:.1f} at start, "
        f"{load_average():.1f} at end"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    width = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, width, strict=True)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in width))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"
    return str(value)


# --- the tick benchmarks: a tick on two databases laid alike but for their size --------------------

# The ticks' `now`, fixed for the whole run so the set of due rows does not drift while it runs.
NOW = datetime.now(UTC).replace(microsecond=0)
USERS = 1000  # the rows laid belong to this many users
ROUNDS = 5


@dataclass
class Size:
    """One of the two databases, and what its ticks took; a benchmark adds what else it records."""

    name: str
    total: int
    due: int
    url: str
    sessions: async_sessionmaker[AsyncSession] | None = None
    load_seconds: float = 0.0
    ticks: list[float] = field(default_factory=list)
    tick_counts: list[int] = field(default_factory=list)
    idle: list[float] = field(default_factory=list)
    buffers: int = 0  # shared buffers the first claim touched
    plan: str = ""


S = TypeVar("S", bound=Size)


@contextlib.contextmanager
def two_databases(table: str) -> Iterator[tuple[str, str]]:
    """The small size's database (DATABASE_URL's, refused unless `table` is empty, or an embedded one)
    and the big size's beside it, with the settings the ticks read pointed at the first."""
    os.environ.pop("METRICS_PORT", None)
    with services(broker=False) as servers, second_database(servers.database_url, "bench_big") as big_url:
        # Settings are read once per process (the ticks' metrics read them); no broker: rows wait unpublished.
        os.environ.update(DATABASE_URL=servers.database_url, JWT_SECRET=JWT_SECRET, TODO_ENV="local")
        asyncio.run(refuse_used(servers.database_url, table))
        yield servers.database_url, big_url


async def measure_ticks(
    sizes: Sequence[S],
    claim: ClauseElement,
    load: Callable[[S], Awaitable[None]],
    reset: Callable[[S], Awaitable[None]],
    drain: Callable[[S], Awaitable[tuple[float, int]]],
    idle_tick: Callable[[S], Awaitable[float]],
) -> None:
    """Lay each size and EXPLAIN its first `claim`; then ROUNDS rounds of `drain` (ticks until nothing
    is due: seconds, ticks) on each, every one undone by `reset`, and the fastest of 5 idle ticks."""
    for size in sizes:
        await load(size)
        size.buffers, size.plan = await explain(size.url, claim)
        await reset(size)  # vacuums the row versions the rolled-back claim left
    async with engines([size.url for size in sizes]) as factories:
        for size, sessions in zip(sizes, factories, strict=True):
            size.sessions = sessions
            await drain(size)  # unmeasured: first connections, statement caches, the page cache
            await reset(size)
        for n in range(ROUNDS):
            # Alternating which goes first, so drift in the machine's load falls on both sides alike.
            for size in sizes if n % 2 == 0 else sizes[::-1]:
                seconds, ticks = await drain(size)
                size.ticks.append(seconds)
                size.tick_counts.append(ticks)
                await reset(size)
                size.idle.append(min([await idle_tick(size) for _ in range(5)]))


def tick_table(
    sizes: Sequence[S], unit: str, per: str, extra: Sequence[tuple[str, Callable[[S], object]]] = ()
) -> str:
    """A tick benchmark's table: a row per size, `extra` (heading, value) columns before the buffers."""
    header = ["size", unit, "due", "load s", "ticks", "tick ms", "min ms", f"us/{per}", "idle tick ms"]
    rows = [
        [
            size.name,
            f"{size.total:,}",
            f"{size.due:,}",
            f"{size.load_seconds:.0f}",
            max(size.tick_counts),
            median(size.ticks) * 1000,
            min(size.ticks) * 1000,
            median(size.ticks) / size.due * 1e6,
            median(size.idle) * 1000,
            *(value(size) for _, value in extra),
            size.buffers,
        ]
        for size in sizes
    ]
    return table([*header, *(heading for heading, _ in extra), "claim buffers"], rows)


def goal(what: str, value: float, *, at_least: float | None = None, at_most: float | None = None) -> str:
    """One goal of issue 11's table, as `make bench` reports each: the figure, its bound, pass or short."""
    met = (at_least is None or value >= at_least) and (at_most is None or value <= at_most)
    bound = f">= {at_least:g}" if at_least is not None else f"<= {at_most:g}"
    return f"goal: {what} {value:.2f} ({bound}): {'pass' if met else 'short'}"


def tick_ratios(label: str, unit: str, sizes: Sequence[Size], load_at_start: float) -> str:
    """What follows a tick benchmark's table: each first claim's plan, the machine, and big / small."""
    small, big = sizes
    tick_ratio = median(big.ticks) / median(small.ticks)
    idle_ratio = median(big.idle) / median(small.idle)
    fastest_ratio = min(big.ticks) / min(small.ticks)
    return "\n".join(
        [
            *(f"  {size.name}: first claim's plan (shared buffers): {size.plan}" for size in sizes),
            machine_note(load_at_start),
            f"{label}: {big.total:,} vs {small.total:,} {unit}, {small.due:,} due: big/small "
            f"time per tick {tick_ratio:.2f} (of the fastest rounds {fastest_ratio:.2f}), "
            f"idle tick {idle_ratio:.2f}, "
            f"claim buffers {big.buffers / max(small.buffers, 1):.2f} (goal about 1.0: flat)",
            goal(f"{label} big/small time per tick", tick_ratio, at_most=FLAT),
        ]
    )


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
