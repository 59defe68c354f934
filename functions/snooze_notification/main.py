"""snooze-notification: POST /api/notifications/{id}/snooze {"minutes"} or {"until"} -> 200: the
reminder's task reminds again then, once."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, json_response, path_uuid, read_json
from todo_backend.models import Snooze
from todo_backend.notifications import SnoozeNotification, notification_json
from todo_backend.notifications import snooze as handle


@functions_framework.aio.http
@http_function
async def snooze_notification(request: Request, user_id: str) -> Response:
    cmd = SnoozeNotification(user_id, path_uuid(request, 2), await read_json(request, Snooze))
    notification = await handle(cmd, unit_of_work("snooze-notification"))
    return json_response(notification_json(notification))
