"""Per-process dependencies, built once on first use (never at import): a cold start connects lazily."""

from __future__ import annotations

from todo_backend.db import get_sessionmaker
from todo_backend.uow import UnitOfWork


def unit_of_work(source: str) -> UnitOfWork:
    """A unit of work for the function named `source` over the process's one connection pool."""
    return UnitOfWork(get_sessionmaker(), source)
