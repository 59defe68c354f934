"""create-comment: POST /api/tasks/{id}/comments {body} -> 201 (who may change the task may comment)."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.comments import CreateComment
from todo_backend.comments import create_comment as handle
from todo_backend.http import http_function, path_uuid, read_json, versioned_response
from todo_backend.models import CommentWrite


@functions_framework.aio.http
@http_function
async def create_comment(request: Request, user_id: str) -> Response:
    task_id = path_uuid(request, 2)
    fields = await read_json(request, CommentWrite)
    comment = await handle(CreateComment(user_id, task_id, fields.body), unit_of_work("create-comment"))
    location = f"/api/tasks/{task_id}/comments/{comment['id']}"
    return versioned_response(comment, 201, {"Location": location})
