"""remove-project-member: DELETE /api/projects/{id}/members/{user_id} -> 204; a member removing
themselves leaves the project (the owner transfers ownership first)."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, path_user_id, path_uuid
from todo_backend.projects import RemoveMember
from todo_backend.projects import remove_member as handle


@functions_framework.aio.http
@http_function
async def remove_project_member(request: Request, user_id: str) -> Response:
    cmd = RemoveMember(user_id, path_uuid(request, 2), path_user_id(request, 4))
    await handle(cmd, unit_of_work("remove-project-member"))
    return Response(status_code=204)
