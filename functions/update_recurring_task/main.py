"""update-recurring-task: PATCH /api/recurring-tasks/{id} merges the fields sent; PUT replaces them all.

A changed schedule, time zone, start, end or anchor re-plans the upcoming occurrence; so does unpausing.
"""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, if_match, path_uuid, read_json, versioned_response
from todo_backend.models import RecurringTaskCreate, RecurringTaskUpdate
from todo_backend.recurring import UpdateRecurringTask
from todo_backend.recurring import update_recurring_task as handle


@functions_framework.aio.http
@http_function
async def update_recurring_task(request: Request, user_id: str) -> Response:
    series_id = path_uuid(request, 2)
    if request.method == "PUT":
        changes = (await read_json(request, RecurringTaskCreate)).model_dump()
    else:
        changes = (await read_json(request, RecurringTaskUpdate)).model_dump(exclude_unset=True)
    cmd = UpdateRecurringTask(user_id, series_id, changes, if_match(request))
    series = await handle(cmd, unit_of_work("update-recurring-task"))
    return versioned_response(series)
