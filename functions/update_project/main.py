"""update-project: PATCH /api/projects/{id} renames or recolors it (admins and the owner)."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, if_match, path_uuid, read_json, versioned_response
from todo_backend.models import ProjectUpdate
from todo_backend.projects import UpdateProject
from todo_backend.projects import update_project as handle


@functions_framework.aio.http
@http_function
async def update_project(request: Request, user_id: str) -> Response:
    project_id = path_uuid(request, 2)
    changes = (await read_json(request, ProjectUpdate)).model_dump(exclude_unset=True)
    cmd = UpdateProject(user_id, project_id, changes, if_match(request))
    return versioned_response(await handle(cmd, unit_of_work("update-project")))
