"""delete-recurring-task: DELETE /api/recurring-tasks/{id} -> 204; no more occurrences, existing ones stay."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, if_match, path_uuid
from todo_backend.recurring import DeleteRecurringTask
from todo_backend.recurring import delete_recurring_task as handle


@functions_framework.aio.http
@http_function
async def delete_recurring_task(request: Request, user_id: str) -> Response:
    cmd = DeleteRecurringTask(user_id, path_uuid(request, 2), if_match(request))
    await handle(cmd, unit_of_work("delete-recurring-task"))
    return Response(status_code=204)
