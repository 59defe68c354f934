"""Cold start: spawn to first successful request, create-task against a hello world, in the same run.

create-task is started exactly as its image starts it (`python -m todo_backend.serve`: settings
checked, logging configured, then functions-framework --asgi), the hello world by functions-framework
alone with the same arguments; one process group each. Both are polled with a real request until the
first success: for create-task an authenticated POST /api/tasks answered 201 by a real PostgreSQL, for
the hello world a GET answered "ok". Then a breakdown of the function's cold path: its heaviest imports
(-X importtime) and its cold-path phases (cold_probe.py), each measured in fresh interpreters.

    python bench/cold_start.py [--quick]
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import harness
import httpx
import psutil

from todo_backend.catalog import Function, by_name
from todo_backend.devstack.runner import HOST, FunctionProcess, free_port, function_env, spawn_function
from todo_backend.serve import functions_framework_args

GOAL, STRETCH = 2.0, 1.5  # x the hello world (issue 11)
RSS_GOAL = 1.5  # x the hello world's resident memory after its first answer
HELLO_WORLD = """import functions_framework.aio


@functions_framework.aio.http
async def hello(request):
    return "ok"
"""
FIRST_SUCCESS_TIMEOUT_SECONDS = 60.0
POLL_INTERVAL_SECONDS = 0.005
CREATE_TASK = by_name("create-task")
PROBE = Path(__file__).with_name("cold_probe.py")
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)$")


@dataclass(frozen=True)
class ScratchFunction(Function):
    """A function whose source lives outside functions/ (the hello world), served by functions-framework
    itself with the arguments the launcher gives it: the baseline has no launcher, no settings to check."""

    source_path: Path = Path()

    @property
    def source(self) -> Path:
        return self.source_path


def spawn_bare(fn: ScratchFunction, port: int, env: Mapping[str, str]) -> FunctionProcess:
    script = Path(sys.executable).with_name("functions-framework")
    process = subprocess.Popen(
        [str(script), *functions_framework_args(fn, port, source=str(fn.source), host=HOST)],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a process group of its own, as spawn_function starts one
    )
    return FunctionProcess(fn, port, process)


def main() -> None:
    args = harness.arguments(__doc__ or "")
    rounds, probes = (3, 1) if args.quick else (7, 3)
    load = harness.load_average()
    # No broker: the fast path publishes after the response is sent, so it is off the measured path.
    os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    with harness.services(broker=False) as svc, tempfile.TemporaryDirectory(prefix="bench-hello-") as tmp:
        hello_source = Path(tmp) / "main.py"
        hello_source.write_text(HELLO_WORLD)
        env = function_env(svc.database_url)
        scratch = ScratchFunction("hello", "hello world", source_path=hello_source)
        hello = ColdStart(lambda port: spawn_bare(scratch, port, env), get_ok)
        create = ColdStart(lambda port: spawn_function(CREATE_TASK, port, env), post_task)
        hello.once(), create.once()  # not counted: fills the page cache and writes .pyc files
        times: dict[str, list[float]] = {"hello world": [], "create-task": []}
        cpu: dict[str, list[float]] = {"hello world": [], "create-task": []}
        rss: dict[str, list[float]] = {"hello world": [], "create-task": []}
        for _ in range(rounds):
            for name, start in (("hello world", hello), ("create-task", create)):
                wall, used, resident = start.once()
                times[name].append(wall)
                cpu[name].append(used)
                rss[name].append(resident)
        base, base_cpu = harness.median(times["hello world"]), harness.median(cpu["hello world"])
        base_rss = harness.median(rss["hello world"])
        print(f"Cold start: spawn to first successful request, {rounds} starts each, alternating\n")
        print(
            harness.table(
                [
                    "process",
                    "median ms",
                    "p90 ms",
                    "min ms",
                    "x hello world",
                    "CPU ms",
                    "CPU x hello",
                    "RSS MiB",
                    "RSS x hello",
                ],
                [
                    [
                        name,
                        *(1e3 * f(v) for f in (harness.median, harness.p90, min)),
                        harness.median(v) / base,
                        1e3 * harness.median(cpu[name]),
                        harness.median(cpu[name]) / base_cpu,
                        harness.median(rss[name]) / 2**20,
                        harness.median(rss[name]) / base_rss,
                    ]
                    for name, v in times.items()
                ],
            )
        )
        print(f"\ncreate-task imports, top 15 cumulative (-X importtime, median of {probes} interpreters)\n")
        top, by_package = importtime(env, probes)
        print(harness.table(["module", "cumulative ms", "self ms"], top))
        print("\nthe same imports by top-level package (self times summed)\n")
        print(harness.table(["package", "ms"], by_package))
        print(f"\ncreate-task cold path, step by step (cold_probe.py, median of {probes} interpreters)\n")
        print(harness.table(["step", "ms"], phases(env, probes)))
    ratio = harness.median(times["create-task"]) / base
    rss_ratio = harness.median(rss["create-task"]) / base_rss
    print("\n" + harness.machine_note(load))
    print(f"\ncold start ratio create-task / hello world (medians): {ratio:.2f}x (stretch <= {STRETCH}x)")
    print(harness.goal("cold start, create-task / hello world", ratio, at_most=GOAL))
    print(harness.goal("RSS after the first answer, create-task / hello world", rss_ratio, at_most=RSS_GOAL))


class ColdStart:
    def __init__(
        self, spawn: Callable[[int], FunctionProcess], request: Callable[[httpx.Client], None]
    ) -> None:
        self.spawn, self.request = spawn, request

    def once(self) -> tuple[float, float, float]:
        """Seconds from spawning the process to its first successful answer, the CPU seconds the
        process group used until then (less disturbed by other load on the machine) and its resident
        memory in bytes right after; then it is stopped."""
        port = free_port()
        started = time.perf_counter()
        process = self.spawn(port)
        try:
            # A fresh connection per attempt: before the port is bound, connecting is refused at once;
            # after, the request waits in the listen backlog until the worker serves it.
            with httpx.Client(base_url=process.url, timeout=FIRST_SUCCESS_TIMEOUT_SECONDS) as client:
                while True:
                    try:
                        self.request(client)
                        wall = time.perf_counter() - started
                        return wall, *_cpu_and_rss(process.process.pid)
                    except (httpx.ConnectError, httpx.RemoteProtocolError):
                        pass
                    if process.process.poll() is not None or (
                        time.perf_counter() - started > FIRST_SUCCESS_TIMEOUT_SECONDS
                    ):
                        time.sleep(0.2)  # the output pump's last lines
                        raise RuntimeError(f"{process.fn.name} never answered:\n" + "\n".join(process.output))
                    time.sleep(POLL_INTERVAL_SECONDS)
        finally:
            process.stop()


def _cpu_and_rss(pid: int) -> tuple[float, float]:
    root = psutil.Process(pid)
    group = (root, *root.children(recursive=True))
    return sum(sum(p.cpu_times()[:2]) for p in group), sum(p.memory_info().rss for p in group)


def get_ok(client: httpx.Client) -> None:
    response = client.get("/")
    if response.status_code != 200 or response.text != "ok":
        raise RuntimeError(f"hello world answered {response.status_code}: {response.text}")


def post_task(client: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {harness.token('bench-cold-start')}"}
    response = client.post("/api/tasks", json={"title": "cold start", "tags": ["bench"]}, headers=headers)
    if response.status_code != 201:
        raise RuntimeError(f"create-task answered {response.status_code}: {response.text}")


def importtime(env: dict[str, str], probes: int) -> tuple[list[list[object]], list[list[object]]]:
    """The 15 heaviest imports (cumulative) of loading the function as functions-framework does, and
    the import time by top-level package (self times summed), with the total first."""
    code = (
        "from functions_framework.aio import create_asgi_app; "
        f"create_asgi_app({CREATE_TASK.entry!r}, {str(CREATE_TASK.source)!r}, 'http')"
    )
    runs: list[dict[str, tuple[int, int]]] = []
    for _ in range(probes):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        lines = (IMPORT_LINE.match(line) for line in result.stderr.splitlines())
        runs.append({m[3]: (int(m[1]), int(m[2])) for m in lines if m})
    names = set.intersection(*(set(run) for run in runs))
    own = {n: statistics.median(run[n][0] for run in runs) / 1e3 for n in names}
    cumulative = {n: statistics.median(run[n][1] for run in runs) / 1e3 for n in names}
    top = [[n, cumulative[n], own[n]] for n in sorted(names, key=lambda n: -cumulative[n])[:15]]
    packages: dict[str, float] = {}
    for name in names:
        package = name.split(".")[0]
        packages[package] = packages.get(package, 0.0) + own[name]
    heaviest = sorted(packages, key=lambda p: -packages[p])[:8]
    by_package: list[list[object]] = [["(all imports)", sum(packages.values())]]
    by_package += [[p, packages[p]] for p in heaviest]
    return top, by_package


def phases(env: dict[str, str], probes: int) -> list[list[object]]:
    runs = []
    for _ in range(probes):
        result = subprocess.run(
            [sys.executable, str(PROBE)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"cold_probe.py failed:\n{result.stderr}")
        runs.append(json.loads(result.stdout))
    return [[step, 1e3 * statistics.median(run[step] for run in runs)] for step in runs[0]]


if __name__ == "__main__":
    main()
