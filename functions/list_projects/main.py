"""list-projects: GET /api/projects, the projects the user is a member of, oldest first, with a cursor."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, json_response, parse, query_params
from todo_backend.paging import PageQuery
from todo_backend.projects import list_projects as handle


@functions_framework.aio.http
@http_function
async def list_projects(request: Request, user_id: str) -> Response:
    query = parse(PageQuery, query_params(request, repeatable=()))
    page = await handle(user_id, query, unit_of_work("list-projects"))
    return json_response(page.json())
