"""What the e2e tests know of the stack they run: how it starts, where it answers, logs and keeps its state.

`todo_run` lives here, not in the package, because only the e2e tests and bench/commit_latency.py (which
loads this file) start the stack that way; function images have no use for it."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from todo_backend.devstack.runner import HOST, free_port


@dataclass(frozen=True)
class RunningStack:
    url: str
    log: Path
    data_dir: Path  # TODO_DATA_DIR: holds the stack.json the stack writes while it runs


@contextlib.contextmanager
def todo_run(
    env: Mapping[str, str], log: Path, timeout: float = 90.0, options: Sequence[str] = ("--warm",)
) -> Iterator[str]:
    """`todo run` in a process of its own, as a user starts it, with `env` as its whole environment,
    `options` on its command line and its output in `log`; yields the gateway URL once /healthz answers
    200. SIGTERM stops it in order; what is still running after that is killed."""
    port = free_port()
    with log.open("wb") as out:
        command = [str(Path(sys.executable).with_name("todo")), "run", "--port", str(port), *options]
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
        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.NoSuchProcess):  # it exited already: its own error is the one to see
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
