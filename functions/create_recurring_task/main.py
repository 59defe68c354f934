"""create-recurring-task: POST /api/recurring-tasks -> 201 with Location; the first occurrence with it."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, read_json, versioned_response
from todo_backend.models import RecurringTaskCreate
from todo_backend.recurring import CreateRecurringTask
from todo_backend.recurring import create_recurring_task as handle


@functions_framework.aio.http
@http_function
async def create_recurring_task(request: Request, user_id: str) -> Response:
    fields = await read_json(request, RecurringTaskCreate)
    series = await handle(CreateRecurringTask(user_id, fields), unit_of_work("create-recurring-task"))
    return versioned_response(series, 201, {"Location": f"/api/recurring-tasks/{series['id']}"})
