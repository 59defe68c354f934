"""create-webhook: POST /api/webhooks -> 201; the signing secret is in this response and no other."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, json_response, read_json
from todo_backend.models import WebhookCreate
from todo_backend.webhooks.subscriptions import CreateWebhook
from todo_backend.webhooks.subscriptions import create_webhook as handle


@functions_framework.aio.http
@http_function
async def create_webhook(request: Request, user_id: str) -> Response:
    fields = await read_json(request, WebhookCreate)
    webhook = await handle(CreateWebhook(user_id, fields), unit_of_work("create-webhook"))
    headers = {"Location": f"/api/webhooks/{webhook['id']}", "Cache-Control": "no-store"}
    return json_response(webhook, 201, headers)
