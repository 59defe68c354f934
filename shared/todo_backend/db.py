"""Async database access: one engine per process, created lazily on first use."""

from __future__ import annotations

import uuid
from functools import lru_cache

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from todo_backend.settings import get_settings


def async_url(url: str) -> str:
    """`postgresql://...` as operators write it, with the asyncpg driver SQLAlchemy needs."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


@lru_cache(maxsize=1)
def get_engine() -> AsyncEngine:
    s = get_settings()
    return create_async_engine(
        async_url(s.database_url),
        pool_size=s.db_pool_size,
        max_overflow=s.db_max_overflow,
        pool_timeout=s.db_pool_timeout_seconds,
        # No ping per checkout (three round trips each): a pod that scaled to zero starts with an empty
        # pool, and a connection the server dropped fails its request with a 503 the client retries.
        pool_recycle=300,
        connect_args={"timeout": s.db_connect_timeout_seconds, **({} if s.db_statement_cache else _POOLER)},
    )


# Behind a transaction pooler (DB_STATEMENT_CACHE=false): neither asyncpg's nor SQLAlchemy's statement
# cache, and each prepared statement under a name of its own, as SQLAlchemy's asyncpg dialect documents
# for PgBouncer: a name reused on another server connection would collide.
_POOLER = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4()}__",
}


@lru_cache(maxsize=1)
def get_sessionmaker() -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(get_engine(), expire_on_commit=False)
