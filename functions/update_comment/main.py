"""update-comment: PATCH /api/tasks/{id}/comments/{comment_id} {body}, by its author."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.comments import UpdateComment
from todo_backend.comments import update_comment as handle
from todo_backend.http import http_function, if_match, path_uuid, read_json, versioned_response
from todo_backend.models import CommentWrite


@functions_framework.aio.http
@http_function
async def update_comment(request: Request, user_id: str) -> Response:
    task_id, comment_id = path_uuid(request, 2), path_uuid(request, 4)
    fields = await read_json(request, CommentWrite)
    cmd = UpdateComment(user_id, task_id, comment_id, fields.body, if_match(request))
    return versioned_response(await handle(cmd, unit_of_work("update-comment")))
