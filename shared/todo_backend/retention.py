"""Retention: the prune-expired-rows tick deletes rows that grow with traffic once they have expired.

Consumer tracking rows, idempotency keys, finished webhook deliveries and read notifications are
pruned; task_event (the audit history) never is (its outbox rows leave when published). Each DELETE
takes one batch of the oldest expired rows through a partial or plain index on the row's timestamp
(migration 0005), in its own short transaction, so no lock is held for long and a tick can stop anywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from todo_backend.fields import utcnow
from todo_backend.settings import Settings

log = logging.getLogger(__name__)

# Like the other ticks: well inside the five minutes between two runs, so a backlog drains over several
# ticks instead of by one that overlaps the next (which would still be correct: they skip each other).
BUDGET_SECONDS = 20.0


@dataclass(frozen=True)
class Rule:
    """A table's expired rows: `stamp` before the cutoff and, if set, `only`. `stamp` leads the index
    the scan walks, oldest first; `only` is that index's predicate."""

    table: str
    stamp: str
    only: str | None = None

    def delete_batch(self) -> str:
        # ctid = ANY(ARRAY(...)) is a TID scan; `ctid IN (SELECT ...)` can turn into a join over the
        # whole table. SKIP LOCKED: rows a racing tick has taken are left to it, never waited for.
        only = f" AND {self.only}" if self.only else ""
        # Identifiers and predicates come from RULES below, never from input.
        return (
            f"DELETE FROM {self.table} WHERE ctid = ANY(ARRAY("  # noqa: S608
            f"SELECT ctid FROM {self.table} WHERE {self.stamp} < :cutoff{only} "
            f"ORDER BY {self.stamp} LIMIT :limit FOR UPDATE SKIP LOCKED))"
        )


RULES = {
    rule.table: rule
    for rule in (
        Rule("processed_event", "processed_at"),
        Rule("idempotency_key", "created_at"),
        # Pending deliveries are still being attempted, however old: only finished ones go.
        Rule("webhook_delivery", "created_at", "status IN ('succeeded', 'failed')"),
        # Unread notifications stay until they are read (read_at IS NULL never compares true).
        Rule("notification", "read_at"),
    )
}


def retention(settings: Settings) -> dict[str, timedelta]:
    """How long each pruned table keeps a row, from the RETENTION_* settings (and the key TTL)."""
    return {
        "processed_event": timedelta(days=settings.retention_processed_event_days),
        "idempotency_key": timedelta(hours=settings.idempotency_key_ttl_hours),
        "webhook_delivery": timedelta(days=settings.retention_webhook_delivery_days),
        "notification": timedelta(days=settings.retention_notification_days),
    }


@dataclass(frozen=True)
class PruneExpiredRows:
    keep: Mapping[str, timedelta]  # by table name, a key of RULES
    batch_size: int
    max_rows: int  # per tick, all tables together
    now: datetime = field(default_factory=utcnow)  # injectable: tests move the clock
    budget_seconds: float = BUDGET_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> PruneExpiredRows:
        return cls(retention(settings), settings.retention_batch_size, settings.retention_max_rows_per_tick)


@dataclass(frozen=True)
class PruneResult:
    deleted: dict[str, int]
    batches: int
    drained: bool  # False: the row cap or the time budget stopped the tick; the next one goes on


async def prune_expired_rows(
    cmd: PruneExpiredRows, sessions: async_sessionmaker[AsyncSession]
) -> PruneResult:
    """One tick: a batch from each table in turn, until every table is drained, the tick has deleted
    `max_rows` or its budget is spent. Taking turns keeps a backlog in one table from starving the rest."""
    deadline = time.monotonic() + cmd.budget_seconds
    deleted = dict.fromkeys(cmd.keep, 0)
    left = list(cmd.keep)  # tables that may still hold expired rows
    batches = 0
    while left and sum(deleted.values()) < cmd.max_rows and time.monotonic() < deadline:
        for table in list(left):
            limit = min(cmd.batch_size, cmd.max_rows - sum(deleted.values()))
            if limit <= 0 or time.monotonic() >= deadline:
                break
            async with sessions() as session, session.begin():
                params = {"cutoff": cmd.now - cmd.keep[table], "limit": limit}
                result = await session.execute(text(RULES[table].delete_batch()), params)
            n: int = result.rowcount  # type: ignore[attr-defined]  # a DELETE's result is a CursorResult
            batches += 1
            deleted[table] += n
            if n < limit:
                left.remove(table)  # what is left expired, if anything, a racing tick holds right now
    if any(deleted.values()):
        log.info("pruned %s in %d batches%s", deleted, batches, "" if not left else "; more remain")
    return PruneResult(deleted, batches, drained=not left)
