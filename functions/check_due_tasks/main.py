"""check-due-tasks (cron): emit every reminder that has fallen due, once, oldest first; JSON counts.

Cluster-local, so no JWT: it acts on no user's behalf and takes no input.
"""

from dataclasses import asdict

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import collecting_commits, unit_of_work
from todo_backend.http import cron_function, json_response
from todo_backend.reminders import CheckDueTasks
from todo_backend.reminders import check_due_tasks as tick
from todo_backend.settings import get_settings


@functions_framework.aio.http
@cron_function
async def check_due_tasks(request: Request) -> Response:
    cmd = CheckDueTasks(batch_size=get_settings().reminder_batch_size)
    # Each batch published as it commits: a tick runs for up to 20 s, longer than the relay's grace.
    async with collecting_commits(publish_each=True):
        result = await tick(cmd, unit_of_work("check-due-tasks"))
    return json_response(asdict(result))
