"""Local cron: calls each cron function on its declared schedule, as a Knative PingSource would."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import httpx
from croniter import croniter

from todo_backend.catalog import Function
from todo_backend.devstack.activator import Serving, always_up

log = logging.getLogger(__name__)


def ping_headers() -> dict[str, str]:
    """The binary-mode CloudEvent headers a PingSource sends with each tick."""
    return {
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-type": "dev.knative.sources.ping",
        "ce-source": "/local/scheduler",
        "ce-time": datetime.now(UTC).isoformat(),
        "content-type": "application/json",
    }


async def tick(client: httpx.AsyncClient, fn: Function, url: str, serving: Serving = always_up) -> None:
    try:
        async with serving(fn.name):  # a function at zero is started for its tick, as in the cluster
            response = await client.post(url, headers=ping_headers(), content=b"{}")
        log.info("cron %s -> %s %s", fn.name, response.status_code, response.text[:200])
    except (httpx.HTTPError, RuntimeError) as exc:
        log.warning("cron %s failed: %r", fn.name, exc)


async def schedule(cron_functions: dict[Function, str], serving: Serving = always_up) -> None:
    """Run until cancelled, each function on its own schedule (UTC)."""
    async with httpx.AsyncClient(timeout=60.0) as client:
        await asyncio.gather(*(_every(client, fn, url, serving) for fn, url in cron_functions.items()))


async def _every(client: httpx.AsyncClient, fn: Function, url: str, serving: Serving) -> None:
    assert fn.schedule is not None
    times = croniter(fn.schedule, datetime.now(UTC))
    while True:
        due: datetime = times.get_next(datetime)
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
        await tick(client, fn, url, serving)
