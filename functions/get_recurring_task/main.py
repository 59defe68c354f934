"""get-recurring-task: GET /api/recurring-tasks/{id}, with its next occurrence times."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, path_uuid, versioned_response
from todo_backend.recurring import get_recurring_task as handle


@functions_framework.aio.http
@http_function
async def get_recurring_task(request: Request, user_id: str) -> Response:
    series = await handle(user_id, path_uuid(request, 2), unit_of_work("get-recurring-task"))
    return versioned_response(series)
