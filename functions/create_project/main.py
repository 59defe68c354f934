"""create-project: POST /api/projects -> 201; the creator is its owner."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, read_json, versioned_response
from todo_backend.models import ProjectCreate
from todo_backend.projects import CreateProject
from todo_backend.projects import create_project as handle


@functions_framework.aio.http
@http_function
async def create_project(request: Request, user_id: str) -> Response:
    fields = await read_json(request, ProjectCreate)
    project = await handle(CreateProject(user_id, fields), unit_of_work("create-project"))
    return versioned_response(project, 201, {"Location": f"/api/projects/{project['id']}"})
