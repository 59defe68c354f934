"""replace-my-settings: PUT /api/me/settings replaces every setting (one left out is reset)."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, json_response, read_json
from todo_backend.models import SettingsWrite
from todo_backend.preferences import ReplaceSettings
from todo_backend.preferences import replace_settings as handle


@functions_framework.aio.http
@http_function
async def replace_my_settings(request: Request, user_id: str) -> Response:
    cmd = ReplaceSettings(user_id, await read_json(request, SettingsWrite))
    return json_response(await handle(cmd, unit_of_work("replace-my-settings")))
