"""`make run`: PostgreSQL, migrations, one functions-framework process per function, and the gateway.

The pieces are reusable: tests start single functions with `spawn_function`, and the e2e tests start
the whole stack with `local_stack` (or `todo run`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from todo_backend.catalog import FUNCTIONS, REPO_ROOT, Function
from todo_backend.settings import LOCAL_JWT_SECRET, Settings

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
FIRST_FUNCTION_PORT = 9100
LOCAL_BROKER_PORT = 19092  # fixed, so `make events` finds the broker `make run` started
LOCAL_DATA_DIR = REPO_ROOT / ".data" / "postgres"
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
OUTPUT_LINES_KEPT = 200


def free_port(start: int | None = None) -> int:
    """A TCP port free on 127.0.0.1: the first from `start` up, or any the OS picks."""
    for port in [0] if start is None else range(start, 65536):
        with socket.socket() as probe:
            # As the servers that will bind it do: a port whose last connection is in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise RuntimeError(f"no free port from {start}")


def wait_for_port(port: int, timeout: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Return once 127.0.0.1:`port` accepts connections; TimeoutError, or RuntimeError if not `alive()`."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        if not alive():
            raise RuntimeError(f"the process meant to listen on port {port} exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port} after {timeout:.0f}s")
        time.sleep(0.1)


@dataclass
class FunctionProcess:
    """One function served by functions-framework in its own process group, as its own pod would be."""

    fn: Function
    port: int
    process: subprocess.Popen[str]
    # The last lines it printed, for the error when it dies; all of them are logged as they come.
    output: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_LINES_KEPT))

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        try:
            wait_for_port(self.port, timeout, alive=lambda: self.process.poll() is None)
        except (RuntimeError, TimeoutError) as err:
            time.sleep(0.2)  # let the output pump catch the last lines of a crash
            lines = "\n".join(self.output) or "(no output)"
            raise RuntimeError(f"function {self.fn.name} did not start: {err}\n{lines}") from err

    def terminate(self) -> None:
        """Ask the whole process group to stop: functions-framework runs a gunicorn master and worker."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        self.terminate()
        self.wait_stopped(timeout)

    def wait_stopped(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Wait for a terminated function to exit; kill its process group if it takes too long."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("function %s ignored SIGTERM for %.0fs; killing it", self.fn.name, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def function_env(
    database_url: str, todo_env: str = "local", kafka: str | None = None, embedded_broker: bool = True
) -> dict[str, str]:
    """What a function process needs beyond the inherited environment."""
    env = {
        "DATABASE_URL": database_url,
        "TODO_ENV": todo_env,
        "JWT_SECRET": os.environ.get("JWT_SECRET") or LOCAL_JWT_SECRET,
    }
    if kafka:
        env["KAFKA_BOOTSTRAP_SERVERS"] = kafka
        if embedded_broker:
            env["KAFKA_ENABLE_IDEMPOTENCE"] = "false"  # Tansu rejects the idempotent producer
    return env


def spawn_function(fn: Function, port: int, env: Mapping[str, str]) -> FunctionProcess:
    """Start `fn` under functions-framework on 127.0.0.1:`port`; call `wait_ready` before using it."""
    command = [
        *_functions_framework(),
        *("--target", fn.entry, "--source", str(fn.source), "--signature-type", fn.signature_type),
        *("--asgi", "--host", HOST, "--port", str(port)),
    ]
    process = subprocess.Popen(
        command,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own process group: Ctrl-C reaches only the runner, which stops functions in order,
        # and terminate() can signal gunicorn's worker along with its master.
        start_new_session=True,
    )
    spawned = FunctionProcess(fn, port, process)
    threading.Thread(target=_pump, args=(spawned,), name=f"output-{fn.name}", daemon=True).start()
    return spawned


def _functions_framework() -> list[str]:
    script = Path(sys.executable).with_name("functions-framework")
    return [str(script)] if script.exists() else [sys.executable, "-m", "functions_framework"]


def _pump(spawned: FunctionProcess) -> None:
    """Log the function's output under its name, keeping the tail for error messages."""
    out = logging.getLogger(spawned.fn.name)
    assert spawned.process.stdout is not None
    for line in spawned.process.stdout:
        spawned.output.append(line.rstrip("\n"))
        out.info("%s", line.rstrip("\n"))


@dataclass
class Stack:
    database_url: str
    kafka_bootstrap_servers: str
    functions: list[FunctionProcess]

    @property
    def upstreams(self) -> dict[str, str]:
        return {p.fn.name: p.url for p in self.functions}

    def describe(self, gateway_url: str) -> str:
        """What runs where, for the person who typed `make run`."""
        rows = [
            ("gateway", gateway_url, "/api/..., /docs, /openapi.json, /healthz, /_fn/<name>/..."),
            ("database", self.database_url, ""),
            ("broker", self.kafka_bootstrap_servers, "topics: `make events` tails them"),
        ]
        rows += [(p.fn.name, p.url, _trigger(p.fn)) for p in self.functions]
        width = [max(len(row[i]) for row in rows) for i in range(2)]
        return "\n".join(f"{a:<{width[0]}}  {b:<{width[1]}}  {c}".rstrip() for a, b, c in rows)


def _trigger(fn: Function) -> str:
    if fn.trigger == "cloudevent":
        return "CloudEvents: " + ", ".join(fn.event_types)
    if fn.trigger == "cron":
        return f"cron: {fn.schedule}"
    return ", ".join(f"{r.method} {r.path}" for r in fn.routes)


@contextlib.contextmanager
def local_stack(
    database_url: str | None = None,
    data_dir: Path = LOCAL_DATA_DIR,
    kafka_bootstrap_servers: str | None = None,
    broker_port: int | None = LOCAL_BROKER_PORT,
) -> Iterator[Stack]:
    """PostgreSQL (embedded in `data_dir` unless `database_url` is given), migrated; the broker (embedded
    unless `kafka_bootstrap_servers` is given) with its topics; every function; and the local eventing:
    each subscription's dispatcher and each cron function's schedule."""
    from todo_backend.devstack.broker import EmbeddedBroker
    from todo_backend.devstack.postgres import EmbeddedPostgres
    from todo_backend.migrations import upgrade

    with contextlib.ExitStack() as cleanup:
        if database_url is None:
            postgres = EmbeddedPostgres(data_dir)
            database_url = postgres.start()
            cleanup.callback(_uninterruptible(postgres.stop))
        logger.info("applying migrations")
        upgrade(database_url)
        embedded = kafka_bootstrap_servers is None
        if kafka_bootstrap_servers is None:
            broker = EmbeddedBroker(broker_port or free_port(), log_file=data_dir.parent / "broker.log")
            kafka_bootstrap_servers = broker.start()
            cleanup.callback(_uninterruptible(broker.stop))
        env = function_env(database_url, "local", kafka_bootstrap_servers, embedded)
        functions: list[FunctionProcess] = []
        cleanup.callback(_uninterruptible(_stop_all), functions)
        port = FIRST_FUNCTION_PORT - 1
        for fn in FUNCTIONS:
            # From the last one up: the previous function has not bound its port yet.
            port = free_port(port + 1)
            functions.append(spawn_function(fn, port, env))
        for process in functions:
            process.wait_ready()
        eventing = LocalEventing(functions, Settings(**_settings_env(env)))
        eventing.start()
        cleanup.callback(_uninterruptible(eventing.stop))
        yield Stack(database_url, kafka_bootstrap_servers, functions)


def _settings_env(env: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in env.items()}


class LocalEventing:
    """Knative Eventing's part, locally: Trigger dispatchers and PingSources, on a thread of their own
    so the gateway's event loop only serves requests."""

    def __init__(self, functions: list[FunctionProcess], settings: Settings) -> None:
        self.settings = settings
        self.subscriptions = {p.fn: p.url + "/" for p in functions if p.fn.trigger == "cloudevent"}
        self.cron = {p.fn: p.url + "/" for p in functions if p.fn.trigger == "cron"}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name="local-eventing", daemon=True)
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from todo_backend.devstack.dispatcher import dispatch
        from todo_backend.devstack.scheduler import schedule
        from todo_backend.messaging import Publisher

        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        try:
            await Publisher(self.settings).ensure_topics()
        finally:
            self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(dispatch(self.subscriptions, self.settings), schedule(self.cron))

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(10)


def _stop_all(functions: list[FunctionProcess]) -> None:
    for process in functions:
        process.terminate()  # all at once, so their graceful shutdowns overlap
    for process in functions:
        process.wait_stopped()


def _uninterruptible(teardown: Callable[..., None]) -> Callable[..., None]:
    """`teardown`, shielded: a second Ctrl-C must not abandon it halfway and leave processes behind."""

    def shielded(*args: object) -> None:
        if threading.current_thread() is not threading.main_thread():
            teardown(*args)  # only the main thread receives (and may mask) signals
            return
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            teardown(*args)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    return shielded


def run(port: int = 8080) -> None:
    """Serve the whole stack at http://127.0.0.1:`port` until Ctrl-C or SIGTERM."""
    import uvicorn

    from todo_backend.devstack.gateway import create_gateway

    if free_port(port) != port:  # fail before starting anything, not after
        raise SystemExit(f"port {port} is in use; try `todo run --port {port + 1}`")
    # SIGTERM unwinds like Ctrl-C, so the `with` below stops every process it started.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with local_stack(
            os.environ.get("DATABASE_URL"), kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        ) as stack:
            logger.info("the local stack:\n%s", stack.describe(f"http://{HOST}:{port}"))
            config = uvicorn.Config(create_gateway(stack.upstreams), HOST, port, log_config=None)
            # uvicorn handles SIGINT/SIGTERM while it serves, then re-raises them once it has stopped.
            uvicorn.Server(config).run()
    except KeyboardInterrupt:
        pass
    logger.info("stopped")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def todo_run(env: Mapping[str, str], log: Path, timeout: float = 90.0) -> Iterator[str]:
    """`todo run` in a process of its own, as a user starts it, with `env` as its whole environment and
    its output in `log`; yields the gateway URL once /healthz answers 200. SIGTERM stops it in order;
    what is still running after that is killed."""
    import httpx
    import psutil

    port = free_port()
    with log.open("wb") as out:
        command = [str(Path(sys.executable).with_name("todo")), "run", "--port", str(port)]
        process = subprocess.Popen(command, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"todo run exited:\n{log.read_text()[-5000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the stack was not healthy in time:\n{log.read_text()[-5000:]}")
            time.sleep(0.3)
        yield url
    finally:
        # Its functions run in sessions of their own: note them now, to kill them if it cannot.
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            process.kill()
            process.wait()
