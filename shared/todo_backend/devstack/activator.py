"""Scale to zero, locally, as Knative's activator and autoscaler do it in the cluster: a function's
process starts on its first request, event or cron tick (which waits for it), and stops once it has
served nothing for the idle window. A function at zero is not down: `down()` names only those whose
last start failed or whose process exited unasked, and the next request, event or tick starts those
again. Every cold start is logged with its duration: what the users of scale-to-zero pay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from todo_backend.catalog import Function
from todo_backend.devstack.runner import HOST, FunctionProcess, spawn_function

logger = logging.getLogger(__name__)

IDLE_SECONDS = 30.0  # Knative's scale-to-zero grace period
REAP_INTERVAL_SECONDS = 0.5

# Around each request, event or tick sent to the function named: `Activator.serving`, or, for a stack
# whose functions are all up (`todo run --warm`), nothing.
Serving = Callable[[str], AbstractAsyncContextManager[object]]


def always_up(name: str) -> AbstractAsyncContextManager[object]:
    return contextlib.nullcontext()


@dataclass
class _Instance:
    fn: Function
    port: int
    metrics_port: int
    process: FunctionProcess | None = None
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    failure: str | None = None  # why its last start failed, or how it exited unasked
    # Held while its process starts or stops: a request never meets a half-started process, and a new
    # process never races the old one for the port.
    changing: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def up(self) -> bool:
        return self.process is not None and self.process.process.poll() is None


class Activator:
    """The processes of `functions`, each on its fixed port (so routes and subscriptions hold), started
    on demand with `env` and stopped after `idle_seconds` without a request, event or tick. Thread-safe:
    the gateway and the local eventing run on loops of their own."""

    def __init__(
        self,
        functions: Mapping[Function, tuple[int, int]],
        env: Mapping[str, str],
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.env, self.idle_seconds = env, idle_seconds
        self._instances = {fn.name: _Instance(fn, *ports) for fn, ports in functions.items()}
        self._lock = threading.Lock()  # in_flight and last_used, and the reaper's decision
        self._stopping = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="activator-reaper", daemon=True)
        self._reaper.start()

    @property
    def upstreams(self) -> dict[str, str]:
        return {name: instance.url for name, instance in self._instances.items()}

    @property
    def metrics(self) -> dict[str, str]:
        return {name: f"http://{HOST}:{i.metrics_port}" for name, i in self._instances.items()}

    def running(self) -> list[FunctionProcess]:
        return [i.process for i in self._instances.values() if i.process is not None]

    @contextlib.asynccontextmanager
    async def serving(self, name: str) -> AsyncIterator[None]:
        """Around one request, event or tick for `name`: its process is up inside, and it is not stopped
        while any is in flight. RuntimeError when it cannot be started."""
        instance = self._instances[name]
        with self._lock:
            instance.in_flight += 1
        try:
            if not instance.up():  # a thread only to start it: most requests find it running
                await asyncio.to_thread(self._up, instance)
            yield
        finally:
            with self._lock:
                instance.in_flight -= 1
                instance.last_used = time.monotonic()

    def down(self) -> list[str]:
        """Functions whose last start failed, or whose process exited without being asked to."""
        return [
            name
            for name, i in self._instances.items()
            if i.failure is not None or (i.process is not None and i.process.process.poll() is not None)
        ]

    def _up(self, instance: _Instance) -> None:
        with instance.changing:
            if instance.up():
                return
            if instance.process is not None:
                code = instance.process.process.poll()
                instance.process.kill_leftovers()  # gunicorn's worker may outlive its master
                logger.warning("function %s exited (code %s); starting it again", instance.fn.name, code)
                instance.process = None
            started = time.monotonic()
            process = spawn_function(instance.fn, instance.port, self.env, instance.metrics_port)
            try:
                process.wait_ready()
            except RuntimeError as err:
                process.kill_leftovers()
                instance.failure = str(err).splitlines()[0]
                raise
            instance.process, instance.failure = process, None
            logger.info(
                "cold start: function %s accepted connections %.0f ms after its process started",
                instance.fn.name,
                1e3 * (time.monotonic() - started),
            )

    def _reap(self) -> None:
        while not self._stopping.wait(REAP_INTERVAL_SECONDS):
            for instance in self._instances.values():
                if not instance.changing.acquire(blocking=False):
                    continue  # starting: it is about to serve
                try:
                    with self._lock:
                        idle = time.monotonic() - instance.last_used
                        process = instance.process
                        if process is None or instance.in_flight or idle < self.idle_seconds:
                            continue
                        instance.process = None
                    code = process.process.poll()
                    if code is not None:  # it crashed, and nothing asked for it since: still down
                        instance.failure = f"exited with code {code}"
                        logger.warning(
                            "function %s exited (code %s); down until its next request, event or tick",
                            instance.fn.name,
                            code,
                        )
                        continue
                    process.stop()
                    logger.info("function %s stopped after %.0f s idle", instance.fn.name, idle)
                finally:
                    instance.changing.release()

    def stop(self) -> None:
        """Stop the reaper, then every running process, all at once."""
        self._stopping.set()
        self._reaper.join()
        processes = self.running()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait_stopped()
