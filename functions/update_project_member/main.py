"""update-project-member: PATCH /api/projects/{id}/members/{user_id} {role} (admins and the owner)."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, json_response, path_user_id, path_uuid, read_json
from todo_backend.models import MemberUpdate
from todo_backend.projects import ChangeRole
from todo_backend.projects import change_role as handle


@functions_framework.aio.http
@http_function
async def update_project_member(request: Request, user_id: str) -> Response:
    project_id, member_id = path_uuid(request, 2), path_user_id(request, 4)
    fields = await read_json(request, MemberUpdate)
    member = await handle(
        ChangeRole(user_id, project_id, member_id, fields.role), unit_of_work("update-project-member")
    )
    return json_response(member)
