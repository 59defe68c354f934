"""list-comments: GET /api/tasks/{id}/comments, oldest first, with a cursor (who may see the task)."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.comments import list_comments as handle
from todo_backend.http import http_function, json_response, parse, path_uuid, query_params
from todo_backend.paging import PageQuery


@functions_framework.aio.http
@http_function
async def list_comments(request: Request, user_id: str) -> Response:
    query = parse(PageQuery, query_params(request, repeatable=()))
    page = await handle(user_id, path_uuid(request, 2), query, unit_of_work("list-comments"))
    return json_response(page.json())
