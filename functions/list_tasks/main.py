"""list-tasks: GET /api/tasks with filters, search, sort and a cursor."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, json_response, parse, query_params
from todo_backend.tasks import TaskQuery
from todo_backend.tasks import list_tasks as handle


@functions_framework.aio.http
@http_function
async def list_tasks(request: Request, user_id: str) -> Response:
    query = parse(TaskQuery, query_params(request, repeatable=("priority", "tag")))
    page = await handle(user_id, query, unit_of_work("list-tasks"))
    return json_response(page.json())
