"""`make run`: PostgreSQL, migrations, one function process per function, and the gateway.

The pieces are reusable: tests start single functions with `spawn_function`, and the e2e tests start
the whole stack with `local_stack` (or `todo run`). A running `todo run` describes itself in
`<data dir>/stack.json`, which `todo events` reads to find its broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
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
from typing import TYPE_CHECKING

from pydantic import TypeAdapter

from todo_backend.catalog import FUNCTIONS, Function, source_checkout
from todo_backend.settings import LOCAL_JWT_SECRET, Settings

if TYPE_CHECKING:
    from todo_backend.devstack.activator import Activator, Serving

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
FIRST_FUNCTION_PORT = 9100
FIRST_METRICS_PORT = 9464  # the cluster's METRICS_PORT, then up: one exporter per function process
LOCAL_BROKER_PORT = 19092  # the embedded broker's first choice; `todo events` reads the one in use
LOCAL_DATA_DIR = source_checkout() / ".data" / "postgres"
STATE_FILE = "stack.json"
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
OUTPUT_LINES_KEPT = 200
# A function that exits is started again after 0.5 s, doubling while it keeps failing, up to 30 s; one
# that stayed up this long counts as healthy again, like a kubelet's CrashLoopBackOff reset.
RESTART_BACKOFF_SECONDS = (0.5, 30.0)
RESTART_RESET_SECONDS = 60.0
PROBE_TIMEOUT_SECONDS = 10.0


def data_root() -> Path:
    """Where the local stack keeps its database, broker log and state file: TODO_DATA_DIR, else .data/."""
    return Path(os.environ.get("TODO_DATA_DIR") or LOCAL_DATA_DIR.parent)


# Every port the OS picked for free_port in this process. Between the probe and the server's own bind
# the port is free again, and the OS may pick it for the next caller: two functions started at once got
# the same one, the loser's bind failed while the winner answered on it, and the loser's requests reached
# the other function. A picked port is handed out once per process.
_picked: set[int] = set()
_picking = threading.Lock()


def free_port(start: int | None = None) -> int:
    """A TCP port free on 127.0.0.1: the first from `start` up, or one the OS picks that this process
    has not been given before."""
    with _picking:
        for port in itertools.repeat(0, 1000) if start is None else range(start, 65536):
            with socket.socket() as probe:
                # As the servers that will bind it do: a port whose last connection is in TIME_WAIT is free.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((HOST, port))
                except OSError:
                    continue
                found = int(probe.getsockname()[1])
            if start is not None:
                return found
            if found not in _picked:
                _picked.add(found)
                return found
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
    metrics_port: int | None = None  # its METRICS_PORT: the exporter starts with its first observation
    # The last lines it printed, for the error when it dies; all of them pass through to ours as they come.
    output: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_LINES_KEPT))
    started_at: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def metrics_url(self) -> str | None:
        return None if self.metrics_port is None else f"http://{HOST}:{self.metrics_port}"

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

    def kill_leftovers(self) -> None:
        """SIGKILL what is left of its process group: gunicorn's worker outlives a killed master, and
        would keep the port its replacement must bind."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

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
    database_url: str, todo_env: str = "local", kafka: str | None = None, idempotence: bool = False
) -> dict[str, str]:
    """What a function process needs beyond the inherited environment."""
    env = {
        "DATABASE_URL": database_url,
        "TODO_ENV": todo_env,
        "JWT_SECRET": os.environ.get("JWT_SECRET") or LOCAL_JWT_SECRET,
        "LOG_FORMAT": "text",  # their lines pass through into the runner's own, read by a person
    }
    if kafka:
        env["KAFKA_BOOTSTRAP_SERVERS"] = kafka
        env["KAFKA_ENABLE_IDEMPOTENCE"] = str(idempotence).lower()
    return env


def decide_idempotence(bootstrap_servers: str, requested: str | None) -> bool:
    """KAFKA_ENABLE_IDEMPOTENCE as `requested`, else whether the broker grants an idempotent producer.

    Asked rather than assumed: a producer the broker refuses fails every publish, and the local
    eventing's dead-letter producer would die with it while the functions still answer."""
    wanted = TypeAdapter(bool).validate_python(requested) if requested else None
    if wanted is False:
        return False
    if asyncio.run(_grants_idempotence(bootstrap_servers)):
        return True
    if wanted:
        raise SystemExit(
            f"the broker at {bootstrap_servers} rejects the idempotent producer (InitProducerId);"
            " unset KAFKA_ENABLE_IDEMPOTENCE or set it to false"
        )
    logger.warning(
        "the broker at %s rejects the idempotent producer: publishing without idempotence"
        " (set KAFKA_ENABLE_IDEMPOTENCE to decide yourself)",
        bootstrap_servers,
    )
    return False


async def _grants_idempotence(bootstrap_servers: str) -> bool:
    """Start an idempotent producer: its start asks the broker for a producer id (InitProducerId)."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError, KafkaError

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=True, acks="all")
    # aiokafka logs a refusal as an ERROR; here it is an answer, which the caller reports.
    sender = logging.getLogger("aiokafka.producer.sender")
    level = sender.level
    sender.setLevel(logging.CRITICAL)
    try:
        await asyncio.wait_for(producer.start(), PROBE_TIMEOUT_SECONDS)
    except (KafkaConnectionError, TimeoutError) as err:
        raise SystemExit(f"the broker at {bootstrap_servers} does not answer: {err!r}") from err
    except KafkaError:
        return False
    finally:
        sender.setLevel(level)
        await producer.stop()
    return True


def spawn_function(
    fn: Function, port: int, env: Mapping[str, str], metrics_port: int | None = None
) -> FunctionProcess:
    """Start `fn` on 127.0.0.1:`port` through its image's launcher (todo_backend.serve: settings checked,
    logging configured, then functions-framework), from the checkout; call `wait_ready` before using it.
    `metrics_port` is its METRICS_PORT, if it is to export metrics."""
    if metrics_port is not None:
        env = {**env, "METRICS_PORT": str(metrics_port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "todo_backend.serve", fn.folder],
        env={
            **os.environ,
            **env,
            "PORT": str(port),
            "HOST": HOST,
            "FUNCTION_SOURCE": str(fn.source),
            "PYTHONUNBUFFERED": "1",
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own process group: Ctrl-C reaches only the runner, which stops functions in order,
        # and terminate() can signal gunicorn's worker along with its master.
        start_new_session=True,
    )
    spawned = FunctionProcess(fn, port, process, metrics_port)
    threading.Thread(target=_pump, args=(spawned,), name=f"output-{fn.name}", daemon=True).start()
    return spawned


_output_lock = threading.Lock()  # one function's line never splits another's


def _pump(spawned: FunctionProcess) -> None:
    """Pass the function's output through to the runner's own (stderr, where its logging goes) as it
    comes, keeping the tail for error messages. Its lines are formatted already, each with its function
    and level (logs.py): logged again, a traceback's ERROR would read as the runner's INFO."""
    assert spawned.process.stdout is not None
    for line in spawned.process.stdout:
        spawned.output.append(line.rstrip("\n"))
        with _output_lock, contextlib.suppress(ValueError, OSError):
            # Suppressed: a closed stream (pytest's capture, once it ends) must not stop the draining,
            # or the function would block on a full pipe.
            sys.stderr.write(line)
            sys.stderr.flush()


@dataclass
class Stack:
    database_url: str
    kafka_bootstrap_servers: str
    functions: list[FunctionProcess]  # started and kept up (`--warm`); empty when they scale to zero
    eventing: LocalEventing
    activator: Activator | None = None  # starts and stops them, when they scale to zero

    @property
    def upstreams(self) -> dict[str, str]:
        if self.activator is not None:
            return self.activator.upstreams
        return {p.fn.name: p.url for p in self.functions}

    @property
    def metrics(self) -> dict[str, str]:
        """Where each function exports its metrics, for the gateway's /metrics."""
        if self.activator is not None:
            return self.activator.metrics
        return {p.fn.name: p.metrics_url for p in self.functions if p.metrics_url}

    def down(self) -> list[str]:
        """The parts of the stack beside the functions that are not running (the gateway probes those,
        or asks the activator)."""
        return self.eventing.down()

    def state(self, gateway_url: str) -> dict[str, object]:
        """What `todo events` and a curious user need to find this stack's parts."""
        return {
            "pid": os.getpid(),
            "gateway": gateway_url,
            "database_url": self.database_url,
            "kafka_bootstrap_servers": self.kafka_bootstrap_servers,
            "functions": self.upstreams,
        }

    def describe(self, gateway_url: str) -> str:
        """What runs where, for the person who typed `make run`."""
        rows = [
            ("gateway", gateway_url, "/api/..., /docs, /openapi.json, /healthz, /metrics, /_fn/<name>/..."),
            ("database", self.database_url, ""),
            ("broker", self.kafka_bootstrap_servers, "topics: `make events` tails them"),
        ]
        rows += [(fn.name, self.upstreams[fn.name], _trigger(fn)) for fn in FUNCTIONS]
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
    broker_port: int | None = None,
    idempotence: str | None = None,
    idle_seconds: float | None = None,
) -> Iterator[Stack]:
    """PostgreSQL (embedded in `data_dir` unless `database_url` is given), migrated; the broker (embedded
    unless `kafka_bootstrap_servers` is given) with its topics; the functions; and the local eventing:
    each subscription's dispatcher and each cron function's schedule. `idempotence` is
    KAFKA_ENABLE_IDEMPOTENCE as the user set it (unset: ask the broker).

    With `idle_seconds` the functions scale to zero: each starts on its first request, event or tick
    and stops after that long without one (activator.py). Without, every function starts now and is
    restarted when it exits."""
    from todo_backend.devstack.activator import Activator
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
        if kafka_bootstrap_servers is None:
            broker = EmbeddedBroker(broker_port or free_port(), log_file=data_dir.parent / "broker.log")
            kafka_bootstrap_servers = broker.start()
            cleanup.callback(_uninterruptible(broker.stop))
        env = function_env(
            database_url,
            "local",
            kafka_bootstrap_servers,
            decide_idempotence(kafka_bootstrap_servers, idempotence),
        )
        ports: dict[Function, tuple[int, int]] = {}
        port, metrics_port = FIRST_FUNCTION_PORT - 1, FIRST_METRICS_PORT - 1
        for fn in FUNCTIONS:
            # From the last one up: the previous function has not bound its port yet (nor its metrics
            # port: that waits for its first observation).
            port = free_port(port + 1)
            metrics_port = free_port(metrics_port + 1)
            ports[fn] = (port, metrics_port)
        functions: list[FunctionProcess] = []
        activator = None
        if idle_seconds is None:
            cleanup.callback(_uninterruptible(_stop_all), functions)
            functions += [spawn_function(fn, ports[fn][0], env, ports[fn][1]) for fn in FUNCTIONS]
            for process in functions:
                process.wait_ready()
            supervisor = Supervisor(functions, env)
            # Registered after _stop_all, so it runs first: nothing is restarted once stopping has begun.
            cleanup.callback(supervisor.stop)
        else:
            activator = Activator(ports, env, idle_seconds)
            cleanup.callback(_uninterruptible(activator.stop))
        urls = {fn: f"http://{HOST}:{ports[fn][0]}/" for fn in FUNCTIONS}
        eventing = LocalEventing(
            {fn: url for fn, url in urls.items() if fn.trigger == "cloudevent"},
            {fn: url for fn, url in urls.items() if fn.trigger == "cron"},
            Settings(**_settings_env(env)),
            activator.serving if activator is not None else None,
        )
        eventing.start()
        cleanup.callback(_uninterruptible(eventing.stop))
        yield Stack(database_url, kafka_bootstrap_servers, functions, eventing, activator)


def _settings_env(env: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in env.items()}


class Supervisor:
    """Starts a function again when its process exits, as the kubelet restarts a crashed container:
    after a backoff that doubles while it keeps failing, on the same port, so the gateway's routes hold.
    One thread per function, blocked in `wait()` until its process exits."""

    def __init__(self, functions: list[FunctionProcess], env: Mapping[str, str]) -> None:
        self.functions, self.env = functions, env
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # a restart and the start of stopping never interleave
        for index, process in enumerate(functions):
            name = f"supervise-{process.fn.name}"
            threading.Thread(target=self._supervise, args=(index,), name=name, daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()

    def _supervise(self, index: int) -> None:
        failures = 0
        while True:
            exited = self.functions[index]
            code = exited.process.wait()
            if self._stopping.is_set():
                return
            exited.kill_leftovers()
            up_for = time.monotonic() - exited.started_at
            failures = 0 if up_for > RESTART_RESET_SECONDS else failures + 1
            first, cap = RESTART_BACKOFF_SECONDS
            delay = min(first * 2 ** (failures - 1), cap) if failures else first
            logger.warning(
                "function %s exited (code %s) after %.0fs; restarting it in %.1fs",
                exited.fn.name,
                code,
                up_for,
                delay,
            )
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                replacement = spawn_function(exited.fn, exited.port, self.env, exited.metrics_port)
                self.functions[index] = replacement
            try:
                replacement.wait_ready()
            except RuntimeError as err:
                logger.error("%s", err)  # it exited again: the loop backs off further
            else:
                logger.info("function %s restarted on %s", exited.fn.name, replacement.url)


class LocalEventing:
    """Knative Eventing's part, locally: Trigger dispatchers and PingSources, on a thread of their own
    so the gateway's event loop only serves requests. `down()` names the parts that stopped."""

    def __init__(
        self,
        subscriptions: dict[Function, str],
        cron: dict[Function, str],
        settings: Settings,
        serving: Serving | None = None,
    ) -> None:
        self.subscriptions, self.cron, self.settings = subscriptions, cron, settings
        self.serving = serving
        self._loop: asyncio.AbstractEventLoop | None = None
        self._parts: dict[str, asyncio.Task[None]] = {}
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="local-eventing", daemon=True)
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(READY_TIMEOUT_SECONDS):
            raise RuntimeError("local eventing did not start in time")
        if self._failure is not None:
            raise RuntimeError(f"local eventing did not start: {self._failure!r}") from self._failure

    def down(self) -> list[str]:
        if not self._thread.is_alive():
            return ["local-eventing"]
        return [f"local-eventing/{name}" for name, task in self._parts.items() if task.done()]

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from todo_backend.devstack.activator import always_up
        from todo_backend.devstack.dispatcher import dispatch
        from todo_backend.devstack.scheduler import schedule
        from todo_backend.messaging import Publisher

        serving = self.serving or always_up
        self._loop = asyncio.get_running_loop()
        try:
            await Publisher(self.settings).ensure_topics()
        except Exception as exc:
            self._failure = exc
            return
        finally:
            self._ready.set()
        self._parts = {
            "dispatcher": asyncio.create_task(dispatch(self.subscriptions, self.settings, serving)),
            "scheduler": asyncio.create_task(schedule(self.cron, serving)),
        }
        for name, task in self._parts.items():
            task.add_done_callback(functools.partial(_report_death, name))
        await asyncio.gather(*self._parts.values(), return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None:
            for task in list(self._parts.values()):
                # The loop closes once every part has ended, which can happen between two of these calls.
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(task.cancel)
        self._thread.join(10)


def _report_death(name: str, task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        # It should run until the stack stops: /healthz answers 503 from now on.
        logger.error("local eventing: the %s stopped: %r", name, task.exception())


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


def run(port: int = 8080, idle_seconds: float | None = None) -> None:
    """Serve the whole stack at http://127.0.0.1:`port` until Ctrl-C or SIGTERM; with `idle_seconds`,
    its functions scale to zero (started on demand, stopped after that long idle)."""
    import uvicorn

    from todo_backend.devstack.gateway import create_gateway

    if free_port(port) != port:  # fail before starting anything, not after
        raise SystemExit(f"port {port} is in use; try `todo run --port {port + 1}`")
    # SIGTERM unwinds like Ctrl-C, so the `with` below stops every process it started.
    signal.signal(signal.SIGTERM, _interrupt)
    root = data_root()
    try:
        with local_stack(
            os.environ.get("DATABASE_URL"),
            root / "postgres",
            os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
            free_port(LOCAL_BROKER_PORT),
            os.environ.get("KAFKA_ENABLE_IDEMPOTENCE"),
            idle_seconds,
        ) as stack:
            gateway_url = f"http://{HOST}:{port}"
            logger.info("the local stack:\n%s", stack.describe(gateway_url))
            gateway = create_gateway(
                stack.upstreams, stack.down, metrics=stack.metrics, activator=stack.activator
            )
            config = uvicorn.Config(gateway, HOST, port, log_config=None)
            with _state_file(root / STATE_FILE, stack.state(gateway_url)):
                # uvicorn handles SIGINT/SIGTERM while it serves, then re-raises them once it has stopped.
                uvicorn.Server(config).run()
    except KeyboardInterrupt:
        pass
    logger.info("stopped")


@contextlib.contextmanager
def _state_file(path: Path, state: Mapping[str, object]) -> Iterator[None]:
    """`state` in `path` while the stack runs; written whole, then renamed, so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(state, indent=2))
    partial.replace(path)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def running_stack(root: Path) -> dict[str, object] | None:
    """The state of the stack `todo run` serves from `root`, or None when none runs there."""
    try:
        state = json.loads((root / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    # A killed run leaves its file behind; its pid is gone (or, after a reboot, someone else's).
    alive = isinstance(state, dict) and _is_todo_run(state.get("pid"))
    return state if alive else None


def _is_todo_run(pid: object) -> bool:
    import psutil

    try:
        return isinstance(pid, int) and "run" in psutil.Process(pid).cmdline()
    except psutil.Error:
        return False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
