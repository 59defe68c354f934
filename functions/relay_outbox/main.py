"""relay-outbox (cron): publish outbox rows the fast path did not, oldest first, per-key in order."""

from dataclasses import asdict

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import get_publisher
from todo_backend.http import cron_function, json_response
from todo_backend.metrics import set_outbox_backlog
from todo_backend.pg import get_pool
from todo_backend.relay import relay_outbox as tick
from todo_backend.settings import get_settings


@functions_framework.aio.http
@cron_function
async def relay_outbox(request: Request) -> Response:
    publisher = get_publisher()
    if publisher is None:
        raise RuntimeError("KAFKA_BOOTSTRAP_SERVERS is not set: relay-outbox has nowhere to publish")
    s = get_settings()
    result = await tick(
        await get_pool(), publisher, grace_seconds=s.relay_grace_seconds, batch_size=s.relay_batch_size
    )
    set_outbox_backlog(result.backlog)
    return json_response(asdict(result))
