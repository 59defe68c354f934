"""retry-webhook-deliveries (cron): one bounded tick of due deliveries, oldest first; JSON counts.

Cluster-local, so no JWT: it acts on no user's behalf and takes no input.
"""

from dataclasses import asdict

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.db import get_sessionmaker
from todo_backend.http import cron_function, json_response
from todo_backend.webhooks.delivery import retry_due as tick


@functions_framework.aio.http
@cron_function
async def retry_webhook_deliveries(request: Request) -> Response:
    return json_response(asdict(await tick(get_sessionmaker())))
