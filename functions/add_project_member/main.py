"""add-project-member: POST /api/projects/{id}/members {user_id, role} -> 201 (admins and the owner)."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, json_response, path_uuid, read_json
from todo_backend.models import MemberAdd
from todo_backend.projects import AddMember
from todo_backend.projects import add_member as handle


@functions_framework.aio.http
@http_function
async def add_project_member(request: Request, user_id: str) -> Response:
    project_id = path_uuid(request, 2)
    fields = await read_json(request, MemberAdd)
    cmd = AddMember(user_id, project_id, fields.user_id, fields.role)
    member = await handle(cmd, unit_of_work("add-project-member"))
    return json_response(member, 201)
