"""delete-comment: DELETE /api/tasks/{id}/comments/{comment_id} -> 204, by its author or a project admin."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.comments import DeleteComment
from todo_backend.comments import delete_comment as handle
from todo_backend.http import http_function, if_match, path_uuid


@functions_framework.aio.http
@http_function
async def delete_comment(request: Request, user_id: str) -> Response:
    cmd = DeleteComment(user_id, path_uuid(request, 2), path_uuid(request, 4), if_match(request))
    await handle(cmd, unit_of_work("delete-comment"))
    return Response(status_code=204)
