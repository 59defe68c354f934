"""list-webhook-deliveries: GET /api/webhooks/{id}/deliveries, newest first, `status` filter, cursor."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from todo_backend.bootstrap import unit_of_work
from todo_backend.http import http_function, json_response, parse, path_uuid, query_params
from todo_backend.webhooks.subscriptions import DeliveryQuery
from todo_backend.webhooks.subscriptions import list_deliveries as handle


@functions_framework.aio.http
@http_function
async def list_webhook_deliveries(request: Request, user_id: str) -> Response:
    query = parse(DeliveryQuery, query_params(request, repeatable=()))
    page = await handle(user_id, path_uuid(request, 2), query, unit_of_work("list-webhook-deliveries"))
    return json_response(page.json())
