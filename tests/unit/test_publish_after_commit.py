"""The one way to publish after a commit: entries collect (or publish per commit) what their unit of work
committed; handlers and ticks only commit. No database: a session that records nothing but commits."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from todo_backend import bootstrap, uow
from todo_backend.bootstrap import collecting_commits
from todo_backend.settings import Settings
from todo_backend.uow import UnitOfWork

PACKAGE = Path(__file__).resolve().parents[2] / "shared" / "todo_backend"
# Handlers and ticks, as tests/unit/test_layers.py names them; a name may be a module or a package.
HANDLERS = {"task_create", "tasks", "recurring", "webhooks", "notifications", "reminders", "retention"}
PUBLISHING = {"publish_now", "get_publisher", "collecting_commits", "commit_listener", "publish_committed"}


class CommitOnly:
    """Stands in for the session: the outbox rows are inserted and committed, nowhere."""

    async def execute(self, statement: Any, rows: list[Any]) -> None:
        pass

    async def commit(self) -> None:
        pass


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    async def record(keys: Sequence[str]) -> None:
        calls.append(list(keys))

    monkeypatch.setattr(bootstrap, "publish_now", record)
    monkeypatch.setattr(
        uow, "to_outbox_row", lambda event, source: SimpleNamespace(partition_key=event, values=dict)
    )
    return calls


async def commit(*keys: str) -> list[str]:
    """One unit of work that emits an event per partition key and commits; the keys it announced."""
    settings = Settings(database_url="postgresql://unused/x", jwt_secret="s" * 40)
    unit = UnitOfWork(async_sessionmaker(), "test", settings)
    unit.session = CommitOnly()
    for key in keys:
        unit.emit(key)
    await unit.commit()
    return [row.partition_key for row in unit.committed]


async def test_an_entry_collects_every_commit_of_its_block_and_publishes_nothing_itself(
    published: list[list[str]],
) -> None:
    async with collecting_commits() as rows:
        first = await commit("a", "b")
        second = await commit("c")
    assert rows == first + second
    assert published == []  # when to publish is the entry's: after the response, before the ack
    await commit("d")
    assert rows == first + second  # outside the block nobody listens: the row waits for the relay


async def test_a_cron_entry_publishes_each_commit_right_after_it(published: list[list[str]]) -> None:
    async with collecting_commits(publish_each=True) as rows:
        first = await commit("a", "b")
        assert published == [first]  # before the next batch starts
        second = await commit("c")
    assert published == [first, second]
    assert rows == []  # nothing is left for the entry to publish after the tick


def names(path: Path) -> set[str]:
    """Every name `path` imports, reads or looks up as an attribute."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.alias):
            found.add(node.name.rsplit(".", 1)[-1])
    return found


def test_no_handler_or_tick_publishes_or_sets_up_publishing() -> None:
    handlers = [
        p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0].removesuffix(".py") in HANDLERS
    ]
    assert len(handlers) >= len(HANDLERS)  # the test looks at something
    offenders = {str(p.relative_to(PACKAGE)): names(p) & PUBLISHING for p in handlers}
    assert {path: found for path, found in offenders.items() if found} == {}
