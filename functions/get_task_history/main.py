"""get-task-history: GET /api/tasks/{id}/events, the task's CloudEvents oldest first."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, json_response, parse, path_uuid, query_params
from todo_backend.paging import PageQuery
from todo_backend.tasks import task_history as handle


@functions_framework.aio.http
@http_function
async def get_task_history(request: Request, user_id: str) -> Response:
    page_query = parse(PageQuery, query_params(request, repeatable=()))
    page = await handle(
        user_id,
        path_uuid(request, 2),
        page_query.limit,
        page_query.cursor,
        unit_of_work("get-task-history"),
    )
    return json_response(page.json())
