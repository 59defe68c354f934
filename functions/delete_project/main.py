"""delete-project: DELETE /api/projects/{id} -> 204 (the owner only); its history stays in the audit log."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, if_match, path_uuid
from todo_backend.projects import DeleteProject
from todo_backend.projects import delete_project as handle


@functions_framework.aio.http
@http_function
async def delete_project(request: Request, user_id: str) -> Response:
    cmd = DeleteProject(user_id, path_uuid(request, 2), if_match(request))
    await handle(cmd, unit_of_work("delete-project"))
    return Response(status_code=204)
