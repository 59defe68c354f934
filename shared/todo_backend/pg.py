"""The process's asyncpg pool: the hot paths' way to PostgreSQL (create-task, the fast path, the relay),
without SQLAlchemy on their cold path. Created on first use, never at import."""

from __future__ import annotations

import asyncio

import asyncpg

from todo_backend.settings import get_settings

_pool: asyncpg.Pool | None = None
_creating = asyncio.Lock()


def dsn(url: str) -> str:
    """`postgresql://...` as operators write it; the SQLAlchemy form is taken too."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def get_pool() -> asyncpg.Pool:
    """As many connections as the function's concurrency target, opened as they are first needed and
    kept (a scale-to-zero pod starts with none), each closed after 300 s unused."""
    global _pool
    async with _creating:
        if _pool is None:
            s = get_settings()
            _pool = await asyncpg.create_pool(
                dsn(s.database_url),
                min_size=0,
                max_size=s.db_pool_size + s.db_max_overflow,
                max_inactive_connection_lifetime=300,
                timeout=s.db_connect_timeout_seconds,
                statement_cache_size=100 if s.db_statement_cache else 0,
                reset=_keep_session,
            )
    return _pool


async def _keep_session(connection: asyncpg.Connection) -> None:
    """What a released connection needs beyond asyncpg's own rollback of an open transaction: nothing.
    Nothing here changes session state (settings are SET LOCAL, advisory locks transaction-scoped, no
    LISTEN, no cursors), so asyncpg's default reset query (unlock all, CLOSE ALL, UNLISTEN, RESET ALL)
    would be one more round trip per checkout: half of create-task's round trips."""


async def close_pool() -> None:
    """Close the pool; the next get_pool() makes a new one (on the event loop running then)."""
    global _pool, _creating
    if _pool is not None:
        await _pool.close()
        _pool = None
    _creating = asyncio.Lock()
