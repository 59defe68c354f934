"""complete-task: POST /api/tasks/{id}/complete -> 200; completing twice changes nothing."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.events import task_json
from todo_backend.http import http_function, if_match, path_uuid, versioned_response
from todo_backend.tasks import CompleteTask
from todo_backend.tasks import complete_task as handle


@functions_framework.aio.http
@http_function
async def complete_task(request: Request, user_id: str) -> Response:
    cmd = CompleteTask(user_id, path_uuid(request, 2), if_match(request))
    task = await handle(cmd, unit_of_work("complete-task"))
    return versioned_response(task_json(task))
