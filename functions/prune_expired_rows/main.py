"""prune-expired-rows (cron): one bounded tick deleting rows past their retention; JSON counts per table.

Cluster-local, so no JWT: it acts on no user's behalf and takes no input.
"""

from dataclasses import asdict

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.db import get_sessionmaker
from todo_backend.http import cron_function, json_response
from todo_backend.retention import PruneExpiredRows
from todo_backend.retention import prune_expired_rows as tick
from todo_backend.settings import get_settings


@functions_framework.aio.http
@cron_function
async def prune_expired_rows(request: Request) -> Response:
    cmd = PruneExpiredRows.from_settings(get_settings())
    return json_response(asdict(await tick(cmd, get_sessionmaker())))
