"""create-task: POST /api/tasks -> 201 with Location; `Idempotency-Key` makes retries safe."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.derived import TaskCreate
from todo_backend.errors import Unprocessable
from todo_backend.http import http_function, read_json, rendered_response
from todo_backend.pg import get_pool
from todo_backend.settings import get_settings
from todo_backend.task_create import CreateTask
from todo_backend.task_create import create_task as handle


@functions_framework.aio.http
@http_function
async def create_task(request: Request, user_id: str) -> Response:
    fields = await read_json(request, TaskCreate)
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 255:
        raise Unprocessable("Idempotency-Key must be 1-255 characters", "Idempotency-Key")
    result = await handle(CreateTask(user_id, fields, key), await get_pool(), "create-task", get_settings())
    headers = {"Location": f"/api/tasks/{result.id}"}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return rendered_response(result.json, version=1, status=201, headers=headers)
