"""get-calendar-feed: GET /api/calendar.ics?token=... is the token's owner's calendar feed (iCalendar).
Calendar apps send no bearer token: the feed's own secret says whose it is."""

import functools

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.calendar_feed import feed, owner_of
from todo_backend.http import http_function


async def feed_owner(request: Request) -> str:
    return await owner_of(request.query_params.get("token"), unit_of_work("get-calendar-feed"))


@functions_framework.aio.http
@functools.partial(http_function, identify=feed_owner)
async def get_calendar_feed(request: Request, user_id: str) -> Response:
    body = await feed(user_id, unit_of_work("get-calendar-feed"))
    return Response(body, 200, {"Cache-Control": "private, max-age=300"}, media_type="text/calendar")
