"""The async unit of work: one transaction holding the change and the outbox rows of its events."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from todo_backend.commits import announce
from todo_backend.events import Event, OutboxRow, to_outbox_row
from todo_backend.models import TaskEvent
from todo_backend.settings import Settings


class UnitOfWork:
    """`async with uow:` opens a transaction; it rolls back unless `commit()` is called.

    Events passed to `emit` become outbox rows in the same commit, so a change and its CloudEvents
    are stored together or not at all. Nothing here talks to the broker: a commit only hands its rows
    to the entry's commit listener (commits.py), if it set one.

    It also carries the process's settings, so that a handler gets what it is configured with from
    what it is given instead of reading the environment itself.
    """

    session: AsyncSession

    def __init__(self, sessions: async_sessionmaker[AsyncSession], source: str, settings: Settings) -> None:
        self._sessions = sessions
        self.source = source  # the function name: CloudEvent `source` is /functions/<name>
        self.settings = settings
        self._events: list[Event] = []
        self.committed: list[OutboxRow] = []

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._sessions()
        self._events = []
        self.committed = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # close() rolls back whatever was not committed, without expiring what was loaded,
        # so the handler can still render the rows it read.
        await self.session.close()

    def emit(self, event: Event) -> None:
        self._events.append(event)

    async def commit(self) -> None:
        rows = [to_outbox_row(event, self.source) for event in self._events]
        if rows:
            # One executemany after the handler's own changes are flushed: in emit order, so the
            # sequences the database assigns follow it.
            await self.session.execute(insert(TaskEvent.__table__), [row.values() for row in rows])
        await self.session.commit()
        self._events = []
        self.committed = rows
        await announce([row.partition_key for row in rows])
