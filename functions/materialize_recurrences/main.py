"""materialize-recurrences (cron): create the next occurrence of each series whose upcoming one has
passed, in bounded batches; JSON counts.

Cluster-local, so no JWT: it acts on no user's behalf and takes no input.
"""

from dataclasses import asdict

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import collecting_commits, unit_of_work
from todo_backend.http import cron_function, json_response
from todo_backend.recurring import materialize_due as tick


@functions_framework.aio.http
@cron_function
async def materialize_recurrences(request: Request) -> Response:
    # Each batch's task.created published as it commits: ten batches under load can outlast the
    # relay's grace, and an early batch's occurrences should not wait for the last.
    async with collecting_commits(publish_each=True):
        result = await tick(unit_of_work("materialize-recurrences"))
    return json_response(asdict(result))
