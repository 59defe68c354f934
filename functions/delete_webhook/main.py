"""delete-webhook: DELETE /api/webhooks/{id} -> 204; its deliveries go with it."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, path_uuid
from todo_backend.webhooks.subscriptions import DeleteWebhook
from todo_backend.webhooks.subscriptions import delete_webhook as handle


@functions_framework.aio.http
@http_function
async def delete_webhook(request: Request, user_id: str) -> Response:
    await handle(DeleteWebhook(user_id, path_uuid(request, 2)), unit_of_work("delete-webhook"))
    return Response(status_code=204)
