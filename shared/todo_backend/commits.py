"""What an entry is told of each commit while it serves a request, event or tick: the partition keys of
the outbox rows the commit wrote, for its publishing fast path (bootstrap.collecting_commits). A
listener, not a list, so that a tick of many commits can have each one published as it lands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar

# None: the rows wait for relay-outbox.
commit_listener: ContextVar[Callable[[Sequence[str]], Awaitable[None]] | None] = ContextVar(
    "commit_listener", default=None
)


async def announce(partition_keys: Sequence[str]) -> None:
    listener = commit_listener.get()
    if listener is not None and partition_keys:
        await listener(partition_keys)
