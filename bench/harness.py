"""What every benchmark shares: --quick, its own PostgreSQL and broker, tokens, and the ratio table.

Not a benchmark itself. The scripts beside it run as `python bench/<name>.py`, which puts this folder
on sys.path, so they import it as `harness`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import jwt

from todo_backend.devstack.runner import free_port
from todo_backend.settings import LOCAL_JWT_SECRET

# The secret function_env hands the function processes (unless JWT_SECRET is set), so our tokens pass.
JWT_SECRET = os.environ.get("JWT_SECRET") or LOCAL_JWT_SECRET


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller run (under ~30 s), for a smoke test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args


def token(sub: str, lifetime: int = 3600) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + lifetime}, JWT_SECRET, algorithm="HS256")


@dataclass(frozen=True)
class Services:
    database_url: str
    bootstrap_servers: str | None
    embedded_broker: bool  # the embedded Tansu rejects the idempotent producer


@contextlib.contextmanager
def services(*, broker: bool) -> Iterator[Services]:
    """DATABASE_URL, or a fresh embedded PostgreSQL in a temp dir; migrated. With `broker`:
    KAFKA_BOOTSTRAP_SERVERS, or a fresh embedded broker. Both on 127.0.0.1, both stopped on exit."""
    from todo_backend.devstack.broker import EmbeddedBroker
    from todo_backend.devstack.postgres import EmbeddedPostgres
    from todo_backend.migrations import upgrade

    with contextlib.ExitStack() as stack:
        url = os.environ.get("DATABASE_URL")
        if not url:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pg-")))
            # An OS-chosen free port: never a PostgreSQL already on this machine (5432 or any other).
            url = stack.enter_context(EmbeddedPostgres(tmp / "data", port=free_port())).url
            assert url is not None
        upgrade(url)
        servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
        embedded = False
        if broker and servers is None:
            servers = stack.enter_context(EmbeddedBroker()).bootstrap_servers
            embedded = True
        yield Services(url, servers if broker else None, embedded)


def load_average() -> float:
    return os.getloadavg()[0]


def machine_note(load_at_start: float) -> str:
    """Other work on the machine moves both sides of a ratio, but not always equally: say how busy it was."""
    return (
        f"machine: {os.cpu_count()} CPUs, 1-minute load average {load_at_start:.1f} at start, "
        f"{load_average():.1f} at end"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    width = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, width, strict=True)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in width))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"
    return str(value)
