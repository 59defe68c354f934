"""update-task: PATCH /api/tasks/{id} merges the fields sent; PUT replaces every editable field."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.events import task_json
from todo_backend.http import http_function, if_match, path_uuid, read_json, versioned_response
from todo_backend.models import TaskCreate, TaskUpdate
from todo_backend.tasks import UpdateTask
from todo_backend.tasks import update_task as handle


@functions_framework.aio.http
@http_function
async def update_task(request: Request, user_id: str) -> Response:
    task_id = path_uuid(request, 2)
    if request.method == "PUT":
        changes = (await read_json(request, TaskCreate)).model_dump()
    else:
        changes = (await read_json(request, TaskUpdate)).model_dump(exclude_unset=True)
    cmd = UpdateTask(user_id, task_id, changes, if_match(request))
    task = await handle(cmd, unit_of_work("update-task"))
    return versioned_response(task_json(task))
