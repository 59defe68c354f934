"""create-task throughput: one function process against PostgreSQL, against plain asyncpg INSERTs.

The function runs as in production (functions-framework --asgi) and is driven over HTTP by httpx from
this process at a fixed concurrency, a fixed number of authenticated POST /api/tasks. The baseline does
what the function stores, with nothing else: per task one transaction of INSERT INTO task and INSERT INTO
task_event (the outbox row), over an asyncpg pool as large as the function's (db_pool_size +
db_max_overflow), at the same concurrency. Runs alternate per concurrency level. First without a broker
(rows wait for the relay), then with one (the fast path publishes each commit's rows after responding).

    python bench/create_throughput.py [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import harness
import httpx
import psutil

from todo_backend.catalog import by_name
from todo_backend.devstack.runner import FunctionProcess, free_port, function_env, spawn_function
from todo_backend.messaging import Publisher
from todo_backend.settings import Settings

CONCURRENCY = (8, 32)
PEER = "FastAPI + SQLModel monolith (peer)"
POOLED = "create-task via PgBouncer, no broker"
# wrk (Debian's package) drives the load where it is installed: it costs the machine far less CPU per
# request than a Python client, which here needed more CPU than the function it measured.
WRK = shutil.which("wrk")
WRK_DONE = re.compile(r"(\d+) requests in ([\d.]+)(m?s)")
DRAIN_TIMEOUT_SECONDS = 60.0
MAX_RESENT = 10  # per run; more is a failure, not a race


@dataclass(frozen=True)
class Run:
    system: str
    concurrency: int
    requests: int
    seconds: float
    server_cpu: float | None = None  # CPU seconds of the function process (None: the baseline)
    client_cpu: float = 0.0  # CPU seconds of this process, which drives the load
    resent: int = 0  # requests sent again after the server closed their connection

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def main() -> None:
    args = harness.arguments(__doc__ or "")
    requests, warmup = (300, 30) if args.quick else (2000, 100)
    print(f"load generator: {WRK or 'httpx in this process (wrk is not installed)'}\n")
    load = harness.load_average()
    with harness.services(broker=True) as svc:
        # Function processes inherit this environment: the fast path is on only where we turn it on.
        os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        runs = asyncio.run(_compare(svc, requests, warmup))
    _report(runs, requests, load)


async def _compare(svc: harness.Services, requests: int, warmup: int) -> list[Run]:
    assert svc.bootstrap_servers is not None
    settings = Settings(
        database_url=svc.database_url,
        jwt_secret=harness.JWT_SECRET,
        todo_env="local",
        kafka_bootstrap_servers=svc.bootstrap_servers,
        **({"kafka_enable_idempotence": False} if svc.embedded_broker else {}),
    )
    # The relay creates topics on its first tick; the fast path expects them.
    await Publisher(settings).ensure_topics()
    env = function_env(svc.database_url)
    fast_env = {
        **env,
        "KAFKA_BOOTSTRAP_SERVERS": svc.bootstrap_servers,
        "KAFKA_ENABLE_IDEMPOTENCE": str(settings.kafka_enable_idempotence).lower(),
    }
    pool_size = settings.db_pool_size + settings.db_max_overflow
    processes: list[FunctionProcess] = []
    cleanup = contextlib.ExitStack()
    try:
        plain = spawn_function(by_name("create-task"), free_port(), env)
        processes.append(plain)
        fast = spawn_function(by_name("create-task"), free_port(), fast_env)
        processes.append(fast)
        peer = _spawn_peer(env)
        processes.append(peer)
        pooled = None
        if harness.PGBOUNCER:
            # The same function behind a transaction pooler, its statement cache off, as there it must be.
            pooled_url = cleanup.enter_context(harness.pgbouncer(svc.database_url))
            pooled_env = {**env, "DATABASE_URL": pooled_url, "DB_STATEMENT_CACHE": "false"}
            pooled = spawn_function(by_name("create-task"), free_port(), pooled_env)
            processes.append(pooled)
        async with asyncpg.create_pool(svc.database_url, min_size=pool_size, max_size=pool_size) as pool:
            for process in processes:
                process.wait_ready()
                await _drive(process, 8, warmup)  # the cold start and first-use costs stay out of the runs
            await _baseline(pool, 8, warmup)
            runs = []
            for concurrency in CONCURRENCY:
                without = await _drive(plain, concurrency, requests, "create-task, no broker")
                # As many as the function served (wrk runs for a time): the baseline is timed as long.
                runs.append(await _baseline(pool, concurrency, without.requests))
                runs.append(without)
                mark = await pool.fetchval("SELECT coalesce(max(sequence), 0) FROM task_event")
                runs.append(await _drive(fast, concurrency, requests, "create-task, fast path"))
                runs.append(await _drained(pool, runs[-1], mark, fast))
                runs.append(await _drive(peer, concurrency, requests, PEER))
                if pooled is not None:
                    runs.append(await _drive(pooled, concurrency, requests, POOLED))
            return runs
    finally:
        for process in processes:
            process.stop()
        cleanup.close()


def _spawn_peer(env: dict[str, str]) -> FunctionProcess:
    """bench/monolith_peer.py under uvicorn, one worker process, with the function's environment."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "monolith_peer:app", "--port", str(port), "--no-access-log"],
        cwd=Path(__file__).parent,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a process group, as the functions have: stop() signals it whole
    )
    return FunctionProcess(by_name("create-task"), port, process)


def _task_body(n: int) -> dict[str, object]:
    due = datetime.now(UTC) + timedelta(days=1 + n % 30)
    return {
        "title": f"Write the quarterly report, part {n}",
        "description": "Collect the numbers from finance and the notes from the last three reviews.",
        "due_date": due.isoformat(),
        "priority": ("low", "medium", "high")[n % 3],
        "tags": ["work", "reports"],
    }


async def _concurrently(concurrency: int, requests: int, one: Callable[[int, int], Awaitable[None]]) -> float:
    """Seconds for `requests` calls of one(worker, n), `concurrency` at a time."""
    counter = iter(range(requests))

    async def worker(w: int) -> None:
        for n in counter:
            await one(w, n)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return time.perf_counter() - started


async def _drive(process: FunctionProcess, concurrency: int, requests: int, system: str = "") -> Run:
    if WRK and system:
        return await asyncio.to_thread(_wrk, process, concurrency, requests, system)
    tokens = [harness.token(f"bench-user-{w}") for w in range(concurrency)]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    resent = 0
    async with httpx.AsyncClient(base_url=process.url, limits=limits, timeout=60) as client:

        async def one(w: int, n: int) -> None:
            nonlocal resent
            headers = {"Authorization": f"Bearer {tokens[w]}"}
            try:
                response = await client.post("/api/tasks", json=_task_body(n), headers=headers)
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                # The server closes a keep-alive connection idle for gunicorn's `keepalive` (2 s); on a
                # busy machine a request can race that close. Send it again, on a fresh connection.
                resent += 1
                if resent > MAX_RESENT:
                    log = "\n".join(process.output)
                    raise RuntimeError(
                        f"{system or 'warm-up'}, c={concurrency}: {exc!r}; output:\n{log}"
                    ) from exc
                response = await client.post("/api/tasks", json=_task_body(n), headers=headers)
            if response.status_code != 201:
                raise RuntimeError(f"create-task answered {response.status_code}: {response.text}")

        server, client_cpu = _cpu(process), time.process_time()
        seconds = await _concurrently(concurrency, requests, one)
        server, client_cpu = _cpu(process) - server, time.process_time() - client_cpu
    return Run(system, concurrency, requests, seconds, server, client_cpu, resent)


def _wrk(process: FunctionProcess, concurrency: int, requests: int, system: str) -> Run:
    """wrk at `concurrency` connections for about as long as `requests` creates take at 500/s; its CPU
    is the client's. Every answer must be a 201 and no socket may fail."""
    script = f"""
wrk.method = "POST"
wrk.body = {json.dumps(json.dumps(_task_body(0)))}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {harness.token("bench-user-wrk")}"
"""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        seconds = max(2, round(requests / 500))
        command = [
            WRK,
            "-t1",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "-s",
            lua.name,
            process.url + "/api/tasks",
        ]
        server, before = _cpu(process), resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        server, after = _cpu(process) - server, resource.getrusage(resource.RUSAGE_CHILDREN)
    done = WRK_DONE.search(out)
    if done is None or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"{system}, c={concurrency}: wrk saw failures:\n{out}")
    elapsed = float(done[2]) / (1000 if done[3] == "ms" else 1)
    client = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Run(system, concurrency, int(done[1]), elapsed, server, client)


async def _drained(pool: asyncpg.Pool, run: Run, mark: int, process: FunctionProcess) -> Run:
    """The fast-path run again, timed until the broker has every row it wrote (none left for a relay)."""
    started = time.perf_counter()
    unpublished = "SELECT count(*) FROM outbox WHERE sequence > $1"
    while await pool.fetchval(unpublished, mark):
        if time.perf_counter() - started > DRAIN_TIMEOUT_SECONDS:
            log = "\n".join(process.output)
            raise RuntimeError(f"the fast path left rows unpublished; its output:\n{log}")
        await asyncio.sleep(0.01)
    waited = time.perf_counter() - started
    return Run(run.system + ", until published", run.concurrency, run.requests, run.seconds + waited)


INSERT_TASK = """
INSERT INTO task (id, user_id, title, description, completed, completed_at, due_date, priority, tags,
                  remind_before_minutes, reminded_at, remind_at, recurring_task_id, occurrence_at,
                  created_at, updated_at, version)
VALUES ($1, $2, $3, $4, false, NULL, $5, $6, $7, NULL, NULL, $8, NULL, NULL, $9, $9, 1)
"""
INSERT_EVENT = """
INSERT INTO task_event (id, type, source, subject, time, partition_key, user_id, data)
VALUES ($1, 'dev.todo.task.created', '/functions/create-task', $2, $3, $2, $4, $5)
"""


async def _baseline(pool: asyncpg.Pool, concurrency: int, requests: int) -> Run:
    async def one(w: int, n: int) -> None:
        body = _task_body(n)
        task_id, user, now = uuid.uuid4(), f"bench-user-{w}", datetime.now(UTC)
        due = datetime.fromisoformat(str(body["due_date"]))
        stamp = now.isoformat().replace("+00:00", "Z")
        task = {
            "id": str(task_id), **body, "completed": False, "completed_at": None,
            "remind_before_minutes": None, "reminded_at": None, "recurring_task_id": None,
            "occurrence_at": None, "created_at": stamp, "updated_at": stamp, "version": 1,
        }  # fmt: skip
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                INSERT_TASK, task_id, user, body["title"], body["description"], due, body["priority"],
                body["tags"], due - timedelta(days=1), now,
            )  # fmt: skip
            await conn.execute(
                INSERT_EVENT, uuid.uuid4(), str(task_id), now, user, json.dumps({"task": task})
            )

    client_cpu = time.process_time()
    seconds = await _concurrently(concurrency, requests, one)
    return Run(
        "asyncpg INSERTs (baseline)", concurrency, requests, seconds, None, time.process_time() - client_cpu
    )


def _cpu(process: FunctionProcess) -> float:
    """CPU seconds so far of the function's process group (gunicorn's arbiter and its worker)."""
    root = psutil.Process(process.process.pid)
    return sum(sum(p.cpu_times()[:2]) for p in (root, *root.children(recursive=True)))


def _report(runs: list[Run], requests: int, load: float) -> None:
    print(f"create-task throughput: {requests} creates per run, one function process\n")
    rows = []
    ratios: dict[tuple[str, int], float] = {}
    cpu: dict[tuple[str, int], float] = {}  # server CPU seconds per request
    for run in runs:
        base = next(
            r
            for r in runs
            if r.concurrency == run.concurrency and r.server_cpu is None and "baseline" in r.system
        )
        ratio = run.rate / base.rate
        ratios[(run.system, run.concurrency)] = ratio
        if run.server_cpu is not None:
            cpu[(run.system, run.concurrency)] = run.server_cpu / run.requests
        server = f"{1e3 * run.server_cpu / run.requests:.2f}" if run.server_cpu is not None else "-"
        client = f"{1e3 * run.client_cpu / run.requests:.2f}" if run.client_cpu else "-"
        rows.append([run.system, run.concurrency, run.seconds, run.rate, ratio, server, client])
    header = [
        "system",
        "concurrency",
        "seconds",
        "creates/s",
        "x baseline",
        "fn CPU ms/req",
        "client CPU ms/req",
    ]
    print(harness.table(header, rows))
    summary = ", ".join(f"c={c}: {ratios[('create-task, no broker', c)]:.2f}x" for c in CONCURRENCY)
    resent = sum(run.resent for run in runs)
    if resent:
        print(f"\nrequests sent again after the server closed their keep-alive connection: {resent}")
    print("\n" + harness.machine_note(load))
    print(f"create-task throughput ratio (no broker) / asyncpg baseline: {summary}")
    for c in CONCURRENCY:
        print(
            harness.goal(
                f"c={c} create-task / raw asyncpg", ratios[("create-task, no broker", c)], at_least=0.5
            )
        )
        with_broker, without = (
            cpu[(system, c)] for system in ("create-task, fast path", "create-task, no broker")
        )
        print(
            harness.goal(f"c={c} CPU per create, fast path / no broker", with_broker / without, at_most=1.3)
        )
        versus_peer = ratios[("create-task, no broker", c)] / ratios[(PEER, c)]
        print(harness.goal(f"c={c} create-task / FastAPI + SQLModel monolith", versus_peer, at_least=2.0))


if __name__ == "__main__":
    main()
