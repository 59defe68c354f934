"""mark-notification-read: POST /api/notifications/{id}/read -> 200; reading twice keeps the first read_at."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, json_response, path_uuid
from todo_backend.notifications import MarkNotificationRead, notification_json
from todo_backend.notifications import mark_read as handle


@functions_framework.aio.http
@http_function
async def mark_notification_read(request: Request, user_id: str) -> Response:
    cmd = MarkNotificationRead(user_id, path_uuid(request, 2))
    notification = await handle(cmd, unit_of_work("mark-notification-read"))
    return json_response(notification_json(notification))
