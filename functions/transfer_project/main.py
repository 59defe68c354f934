"""transfer-project: POST /api/projects/{id}/transfer {user_id}: the owner hands the project to a member
and becomes an admin."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, path_uuid, read_json, versioned_response
from todo_backend.models import ProjectTransfer
from todo_backend.projects import TransferProject
from todo_backend.projects import transfer_project as handle


@functions_framework.aio.http
@http_function
async def transfer_project(request: Request, user_id: str) -> Response:
    fields = await read_json(request, ProjectTransfer)
    cmd = TransferProject(user_id, path_uuid(request, 2), fields.user_id)
    return versioned_response(await handle(cmd, unit_of_work("transfer-project")))
