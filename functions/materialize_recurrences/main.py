"""materialize-recurrences (cron): create the next occurrence of each series whose upcoming one has
passed, in bounded batches; JSON counts.

Cluster-local, so no JWT: it acts on no user's behalf and takes no input.
"""

from dataclasses import asdict

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import publish_now, unit_of_work
from todo_backend.http import json_response
from todo_backend.models import TaskEvent
from todo_backend.recurring import materialize_due as tick
from todo_backend.uow import committed_rows


@functions_framework.aio.http
async def materialize_recurrences(request: Request) -> Response:
    rows: list[TaskEvent] = []
    token = committed_rows.set(rows)
    try:
        result = await tick(unit_of_work("materialize-recurrences"))
    finally:
        committed_rows.reset(token)
    await publish_now(rows)  # the new occurrences' task.created; relay-outbox covers a failure
    return json_response(asdict(result))
