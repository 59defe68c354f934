"""Waiting for deliver-webhooks' detached fast-path attempts, so a test can look at what they did.

Production never waits for them: an attempt lost with its process is retried by the cron once its lease
lapses. So the wait lives here, reading the module's set of detached tasks."""

from __future__ import annotations

import asyncio

from todo_backend.webhooks import delivery


async def background_deliveries_done() -> None:
    """Wait for every detached fast-path attempt, and for any that those start meanwhile."""
    while delivery._detached:
        await asyncio.gather(*delivery._detached, return_exceptions=True)
