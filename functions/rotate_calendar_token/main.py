"""rotate-calendar-token: POST /api/me/calendar-token gives the caller's calendar feed a new secret
(the old one stops at once) and answers it with the feed's URL, once: only its hash is kept."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.calendar_feed import RotateCalendarToken, token_json
from todo_backend.calendar_feed import rotate_token as handle
from todo_backend.http import http_function, json_response, public_base


@functions_framework.aio.http
@http_function
async def rotate_calendar_token(request: Request, user_id: str) -> Response:
    token = await handle(RotateCalendarToken(user_id), unit_of_work("rotate-calendar-token"))
    return json_response(token_json(token, public_base(request)), 201, {"Cache-Control": "no-store"})
