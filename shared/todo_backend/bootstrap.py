"""Per-process dependencies, built once on first use (never at import): a cold start connects lazily."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import TYPE_CHECKING

from todo_backend.commits import commit_listener
from todo_backend.pg import get_pool
from todo_backend.settings import get_settings

# Imported where they are first used: create-task's cold path has no ORM, and a process that never
# publishes never loads the Kafka client.
if TYPE_CHECKING:
    from todo_backend.messaging import EventPublisher
    from todo_backend.uow import UnitOfWork

log = logging.getLogger(__name__)


def unit_of_work(source: str) -> UnitOfWork:
    """A unit of work for the function named `source` over the process's one connection pool,
    carrying the process's settings."""
    from todo_backend.db import get_sessionmaker
    from todo_backend.uow import UnitOfWork

    return UnitOfWork(get_sessionmaker(), source, get_settings())


@lru_cache(maxsize=1)
def get_publisher() -> EventPublisher | None:
    """The process's publisher; None where no broker is configured (rows wait for a relay)."""
    from todo_backend.messaging import DaprPublisher, Publisher

    settings = get_settings()
    if settings.publisher == "dapr":
        return DaprPublisher(settings)
    return Publisher(settings) if settings.kafka_bootstrap_servers else None


class CircuitBreaker:
    """Open for `cooldown` seconds after a failure; until then callers stand aside."""

    def __init__(self, cooldown: float) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0

    def allows(self) -> bool:
        return time.monotonic() >= self._open_until

    def trip(self) -> None:
        self._open_until = time.monotonic() + self.cooldown


@lru_cache(maxsize=1)
def get_fast_path_breaker() -> CircuitBreaker:
    return CircuitBreaker(get_settings().fast_path_cooldown_seconds)


async def publish_now(partition_keys: Sequence[str]) -> None:
    """The fast path after a commit: publish the waiting rows of the keys it wrote. A failure only
    delays the events: relay-outbox publishes them.
    After one, the fast path stands aside for FAST_PATH_COOLDOWN_SECONDS, so that while the broker is
    down or silent no request waits on it while holding a key's lock and a pool connection."""
    publisher = get_publisher()
    breaker = get_fast_path_breaker()
    if publisher is None or not partition_keys or not breaker.allows():
        return
    try:
        await _batches().publish(partition_keys)
    except Exception as exc:
        breaker.trip()
        log.warning(
            "fast-path publish failed; relay-outbox publishes for the next %.0f s: %r", breaker.cooldown, exc
        )


class _Batches:
    """One fast-path publish at a time per process, each taking every key committed while the one before
    it ran: one transaction, one set of key locks, one wait for acks and one pair of topic checks for
    all of them. Alone, a commit is published at once, as before; under load the per-publish round trips
    are shared instead of paid per commit (bench/create_throughput.py), and the fast path holds at most
    one pool connection. Each caller returns when the publish that took its keys has ended, with its
    failure, if it failed."""

    def __init__(self) -> None:
        self._keys: dict[str, None] = {}  # committed, waiting for the next publish
        self._next: asyncio.Future[None] | None = None  # that publish's outcome
        self._drainer: asyncio.Task[None] | None = None

    async def publish(self, keys: Sequence[str]) -> None:
        self._keys.update(dict.fromkeys(keys))
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        outcome = self._next
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        await asyncio.shield(outcome)  # a caller given up on (a client gone) leaves the others theirs

    async def _drain(self) -> None:
        from todo_backend.relay import publish_committed

        try:
            while self._keys:
                await asyncio.sleep(0)  # the commits finishing in this turn of the loop go along
                keys, outcome = list(self._keys), self._next
                self._keys, self._next = {}, None
                assert outcome is not None
                try:
                    publisher = get_publisher()
                    assert publisher is not None
                    await publish_committed(await get_pool(), publisher, keys)
                except Exception as exc:
                    outcome.set_exception(exc)
                except BaseException:
                    outcome.cancel()  # its callers must not wait for a publish that will never end
                    raise
                else:
                    outcome.set_result(None)
        finally:
            self._drainer = None


# Per event loop: a batch's futures belong to the loop that made them (tests run apps on several).
_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batches] = weakref.WeakKeyDictionary()


def _batches() -> _Batches:
    loop = asyncio.get_running_loop()
    if loop not in _per_loop:
        _per_loop[loop] = _Batches()
    return _per_loop[loop]


@asynccontextmanager
async def collecting_commits(*, publish_each: bool = False) -> AsyncIterator[list[str]]:
    """The one way an entry publishes after a commit: the partition keys of every outbox row committed
    inside the block are collected into the list it yields, for the entry to pass to `publish_now` when
    its timing allows (HTTP after the response, a consumer before the ack). Handlers and ticks only commit.

    `publish_each=True` (cron ticks) publishes each commit's rows right after that commit instead, and
    collects nothing: a tick commits batch after batch for up to its budget (check-due-tasks: 20 s),
    far past RELAY_GRACE_SECONDS (the window relay-outbox leaves the fast path), so holding an early
    batch's rows until the tick ended would delay its events by the whole tick. One publish per batch
    costs a short transaction; the batch's connection is back in the pool before it starts.
    """
    keys: list[str] = []

    async def listen(committed: Sequence[str]) -> None:
        if publish_each:
            await publish_now(committed)
        else:
            keys.extend(committed)

    token = commit_listener.set(listen)
    try:
        yield keys
    finally:
        commit_listener.reset(token)
