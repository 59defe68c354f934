"""get-my-settings: GET /api/me/settings, the caller's time zone and locale (the defaults if unset)."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, json_response
from todo_backend.preferences import my_settings as handle


@functions_framework.aio.http
@http_function
async def get_my_settings(request: Request, user_id: str) -> Response:
    return json_response(await handle(user_id, unit_of_work("get-my-settings")))
