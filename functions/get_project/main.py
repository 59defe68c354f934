"""get-project: GET /api/projects/{id}, with the caller's role in it."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, path_uuid, versioned_response
from todo_backend.projects import get_project as handle


@functions_framework.aio.http
@http_function
async def get_project(request: Request, user_id: str) -> Response:
    project = await handle(user_id, path_uuid(request, 2), unit_of_work("get-project"))
    return versioned_response(project)
