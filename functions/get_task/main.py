"""get-task: GET /api/tasks/{id}."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.events import task_json
from todo_backend.http import http_function, path_uuid, versioned_response
from todo_backend.tasks import get_task as handle


@functions_framework.aio.http
@http_function
async def get_task(request: Request, user_id: str) -> Response:
    task = await handle(user_id, path_uuid(request, 2), unit_of_work("get-task"))
    return versioned_response(task_json(task))
