"""list-notifications: GET /api/notifications, the user's notifications newest first, `unread`, cursor."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, json_response, parse, query_params
from todo_backend.notifications import NotificationQuery
from todo_backend.notifications import list_notifications as handle


@functions_framework.aio.http
@http_function
async def list_notifications(request: Request, user_id: str) -> Response:
    query = parse(NotificationQuery, query_params(request, repeatable=()))
    page = await handle(user_id, query, unit_of_work("list-notifications"))
    return json_response(page.json())
