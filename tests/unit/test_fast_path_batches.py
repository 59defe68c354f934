"""The fast path publishes one batch at a time per process: the keys committed while a publish runs go
together in the next one, every caller returns once the publish that took its keys has ended, and a
failure reaches each of them (and trips the breaker). No broker, no database: the publish is a stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from todo_backend import bootstrap, relay


@pytest.fixture
def publishes(monkeypatch: pytest.MonkeyPatch) -> tuple[list[list[str]], asyncio.Event, list[BaseException]]:
    """The keys of each publish, a gate the first one waits on, and failures to raise, in turn."""
    calls: list[list[str]] = []
    gate = asyncio.Event()
    failures: list[BaseException] = []

    async def publish_committed(pool: object, publisher: object, keys: Sequence[str]) -> int:
        calls.append(sorted(keys))
        if len(calls) == 1:
            await gate.wait()
        if failures:
            raise failures.pop(0)
        return len(keys)

    async def no_pool() -> None:
        return None

    monkeypatch.setattr(relay, "publish_committed", publish_committed)
    monkeypatch.setattr(bootstrap, "get_pool", no_pool)
    monkeypatch.setattr(bootstrap, "get_publisher", lambda: object())
    breaker = bootstrap.CircuitBreaker(30)
    monkeypatch.setattr(bootstrap, "get_fast_path_breaker", lambda: breaker)
    return calls, gate, failures


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_commits_landing_during_a_publish_go_together_in_the_next(
    publishes: tuple[list[list[str]], asyncio.Event, list[BaseException]],
) -> None:
    calls, gate, _ = publishes
    first = asyncio.create_task(bootstrap.publish_now(["a"]))
    await _until(lambda: calls == [["a"]])
    later = [asyncio.create_task(bootstrap.publish_now([key])) for key in ("c", "b", "c")]
    for _ in range(20):
        await asyncio.sleep(0)
    assert calls == [["a"]]  # one publish at a time: the others wait for it
    assert not any(task.done() for task in later)  # and their callers for theirs
    gate.set()
    await asyncio.gather(first, *later)
    assert calls == [["a"], ["b", "c"]]


async def test_a_failed_publish_reaches_every_caller_whose_keys_it_took(
    publishes: tuple[list[list[str]], asyncio.Event, list[BaseException]],
) -> None:
    calls, gate, failures = publishes
    gate.set()
    failures.append(TimeoutError("the broker is silent"))
    await asyncio.gather(bootstrap.publish_now(["a"]), bootstrap.publish_now(["b"]))
    assert calls == [["a", "b"]]
    assert not bootstrap.get_fast_path_breaker().allows()  # the relay publishes for the cooldown
    await bootstrap.publish_now(["c"])
    assert calls == [["a", "b"]]  # stood aside


async def test_a_cancelled_publish_leaves_no_caller_waiting(
    publishes: tuple[list[list[str]], asyncio.Event, list[BaseException]],
) -> None:
    calls, gate, failures = publishes
    gate.set()
    failures.append(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(bootstrap.publish_now(["a"]), 5)
    await asyncio.wait_for(bootstrap.publish_now(["b"]), 5)  # a new drain serves the next commit
    assert calls == [["a"], ["b"]]
