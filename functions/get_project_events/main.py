"""get-project-events: GET /api/projects/{id}/events, the project's activity feed, oldest first."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, json_response, parse, path_uuid, query_params
from todo_backend.paging import PageQuery
from todo_backend.projects import project_events as handle


@functions_framework.aio.http
@http_function
async def get_project_events(request: Request, user_id: str) -> Response:
    query = parse(PageQuery, query_params(request, repeatable=()))
    page = await handle(user_id, path_uuid(request, 2), query, unit_of_work("get-project-events"))
    return json_response(page.json())
