"""delete-task: DELETE /api/tasks/{id} -> 204; the task's history stays readable."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, if_match, path_uuid
from todo_backend.tasks import DeleteTask
from todo_backend.tasks import delete_task as handle


@functions_framework.aio.http
@http_function
async def delete_task(request: Request, user_id: str) -> Response:
    cmd = DeleteTask(user_id, path_uuid(request, 2), if_match(request))
    await handle(cmd, unit_of_work("delete-task"))
    return Response(status_code=204)
