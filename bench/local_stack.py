"""The local stack: `todo run` scaling to zero against `todo run --warm` (every function up), side by side.

Each start is timed from spawning `todo run` to its first /healthz 200, on an existing data directory
(an unmeasured first start creates it) and a warm virtualenv; then, 2 s later, the stack's memory
(PSS, so pages PostgreSQL's processes share are counted once: the runner and what it started, and the
postmaster with its backends) with the number of function processes running; then the first create.

    python bench/local_stack.py [--quick]
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import harness
import httpx
import psutil

from todo_backend.devstack.runner import HOST, free_port

HEALTHY_GOAL_SECONDS = 5.0
IDLE_GOAL_BYTES = 0.5 * 2**30
START_TIMEOUT_SECONDS = 120.0
SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class Start:
    healthy: float  # seconds from spawn to the first /healthz 200
    footprint: int  # PSS bytes of the whole stack, SETTLE_SECONDS after
    functions: int  # function processes running then
    first_create: float  # seconds for the first POST /api/tasks (a cold start where they scale to zero)


def main() -> None:
    args = harness.arguments(__doc__ or "")
    rounds = 1 if args.quick else 3
    load = harness.load_average()
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as data:
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")},
            "TODO_DATA_DIR": data,
        }
        with _stack(env, []):
            pass  # creates the database and the broker's files: later starts find them
        starts: dict[str, list[Start]] = {"--warm": [], "scale to zero": []}
        for _ in range(rounds):
            for mode, options in (("--warm", ["--warm"]), ("scale to zero", [])):
                with _stack(env, options) as (url, started, runner):
                    healthy = time.perf_counter() - started
                    time.sleep(SETTLE_SECONDS)
                    footprint, functions = _footprint(runner, Path(data) / "postgres")
                    starts[mode].append(Start(healthy, footprint, functions, _first_create(url)))
    rows = [
        [
            mode,
            harness.median([s.healthy for s in runs]),
            harness.median([s.footprint for s in runs]) / 2**20,
            harness.median([s.functions for s in runs]),
            1e3 * harness.median([s.first_create for s in runs]),
        ]
        for mode, runs in starts.items()
    ]
    print(f"The local stack, {rounds} start(s) each, alternating, on an existing data directory\n")
    print(harness.table(["todo run", "healthy s", "PSS MiB", "functions up", "first create ms"], rows))
    zero = starts["scale to zero"]
    print("\n" + harness.machine_note(load))
    healthy = harness.median([s.healthy for s in zero])
    idle = harness.median([s.footprint for s in zero])
    print(harness.goal("local stack healthy, seconds", healthy, at_most=HEALTHY_GOAL_SECONDS))
    print(harness.goal("local stack idle footprint, GiB", idle / 2**30, at_most=IDLE_GOAL_BYTES / 2**30))


@contextlib.contextmanager
def _stack(env: dict[str, str], options: list[str]) -> Iterator[tuple[str, float, psutil.Process]]:
    """`todo run` on a free port until healthy; yields its URL, when it was spawned, and its process.
    Stopped with SIGTERM (it stops what it started), killed if it takes too long."""
    port = free_port()
    todo = str(Path(sys.executable).with_name("todo"))
    started = time.perf_counter()
    process = subprocess.Popen(
        [todo, "run", "--port", str(port), *options],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{HOST}:{port}"
    try:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.perf_counter() - started > START_TIMEOUT_SECONDS:
                raise RuntimeError(f"todo run {' '.join(options)} was not healthy in time")
            time.sleep(0.05)
        yield url, started, psutil.Process(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _footprint(runner: psutil.Process, pgdata: Path) -> tuple[int, int]:
    """PSS of the runner, everything it started, and the postmaster on `pgdata` with its backends; and
    how many function processes run (the runner's children given a PORT)."""
    group = [runner, *runner.children(recursive=True)]
    for process in psutil.process_iter(["name", "cmdline"]):
        args = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and str(pgdata) in args:
            group += [process, *process.children(recursive=True)]
    total = 0
    for process in {p.pid: p for p in group}.values():
        with contextlib.suppress(psutil.Error):
            total += process.memory_full_info().pss
    functions = 0
    for child in runner.children():
        with contextlib.suppress(psutil.Error):
            functions += "PORT" in child.environ()
    return total, functions


def _first_create(url: str) -> float:
    headers = {"Authorization": f"Bearer {harness.token('bench-local-stack')}"}
    started = time.perf_counter()
    response = httpx.post(f"{url}/api/tasks", json={"title": "first"}, headers=headers, timeout=60)
    if response.status_code != 201:
        raise RuntimeError(f"create-task answered {response.status_code}: {response.text}")
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
