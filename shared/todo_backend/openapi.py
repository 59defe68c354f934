"""OpenAPI 3.1 for the whole API: paths from the function declarations, schemas from the models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from todo_backend.catalog import FUNCTIONS, Function, Route, by_name
from todo_backend.models import (
    CommentPublic,
    CommentWrite,
    MemberAdd,
    MemberPublic,
    MemberUpdate,
    MyProject,
    NotificationPublic,
    ProjectCreate,
    ProjectTransfer,
    ProjectUpdate,
    RecurringTaskCreate,
    RecurringTaskPublic,
    RecurringTaskUpdate,
    SettingsPublic,
    SettingsWrite,
    Snooze,
    TaskCreate,
    TaskPublic,
    TaskUpdate,
    WebhookCreate,
    WebhookDeliveryPublic,
    WebhookPublic,
)
from todo_backend.notifications import NotificationQuery
from todo_backend.paging import PageQuery
from todo_backend.tasks import TaskQuery
from todo_backend.webhooks.subscriptions import DeliveryQuery

# What each operation takes and returns: (request body, response status, response schema).
_IO: dict[tuple[str, str], tuple[str | None, int, str | None]] = {
    ("create-task", "POST"): ("TaskCreate", 201, "TaskPublic"),
    ("list-tasks", "GET"): (None, 200, "TaskPage"),
    ("get-task", "GET"): (None, 200, "TaskPublic"),
    ("update-task", "PATCH"): ("TaskUpdate", 200, "TaskPublic"),
    ("update-task", "PUT"): ("TaskCreate", 200, "TaskPublic"),
    ("delete-task", "DELETE"): (None, 204, None),
    ("complete-task", "POST"): (None, 200, "TaskPublic"),
    ("get-task-history", "GET"): (None, 200, "EventPage"),
    ("create-webhook", "POST"): ("WebhookCreate", 201, "WebhookCreated"),
    ("list-webhooks", "GET"): (None, 200, "WebhookPage"),
    ("delete-webhook", "DELETE"): (None, 204, None),
    ("list-webhook-deliveries", "GET"): (None, 200, "DeliveryPage"),
    ("create-recurring-task", "POST"): ("RecurringTaskCreate", 201, "RecurringTaskPublic"),
    ("list-recurring-tasks", "GET"): (None, 200, "RecurringTaskPage"),
    ("get-recurring-task", "GET"): (None, 200, "RecurringTaskPublic"),
    ("update-recurring-task", "PATCH"): ("RecurringTaskUpdate", 200, "RecurringTaskPublic"),
    ("update-recurring-task", "PUT"): ("RecurringTaskCreate", 200, "RecurringTaskPublic"),
    ("delete-recurring-task", "DELETE"): (None, 204, None),
    ("list-notifications", "GET"): (None, 200, "NotificationPage"),
    ("mark-notification-read", "POST"): (None, 200, "NotificationPublic"),
    ("snooze-notification", "POST"): ("Snooze", 200, "NotificationPublic"),
    ("get-my-settings", "GET"): (None, 200, "SettingsPublic"),
    ("replace-my-settings", "PUT"): ("SettingsWrite", 200, "SettingsPublic"),
    ("rotate-calendar-token", "POST"): (None, 201, "CalendarTokenCreated"),
    ("get-calendar-feed", "GET"): (None, 200, None),
    ("create-project", "POST"): ("ProjectCreate", 201, "MyProject"),
    ("list-projects", "GET"): (None, 200, "ProjectPage"),
    ("get-project", "GET"): (None, 200, "MyProject"),
    ("update-project", "PATCH"): ("ProjectUpdate", 200, "MyProject"),
    ("delete-project", "DELETE"): (None, 204, None),
    ("list-project-members", "GET"): (None, 200, "MemberPage"),
    ("add-project-member", "POST"): ("MemberAdd", 201, "MemberPublic"),
    ("update-project-member", "PATCH"): ("MemberUpdate", 200, "MemberPublic"),
    ("remove-project-member", "DELETE"): (None, 204, None),
    ("transfer-project", "POST"): ("ProjectTransfer", 200, "MyProject"),
    ("get-project-events", "GET"): (None, 200, "EventPage"),
    ("create-comment", "POST"): ("CommentWrite", 201, "CommentPublic"),
    ("list-comments", "GET"): (None, 200, "CommentPage"),
    ("update-comment", "PATCH"): ("CommentWrite", 200, "CommentPublic"),
    ("delete-comment", "DELETE"): (None, 204, None),
}

# The query parameters of each list, from its query model (types, enums, bounds and defaults); only
# what each one means is said here.
_QUERY: dict[str, tuple[type[PageQuery], dict[str, str]]] = {
    "list-tasks": (
        TaskQuery,
        {
            "status": "Filter by completion",
            "priority": "Any of these",
            "tag": "All of these tags",
            "q": "Case-insensitive keyword in title or description",
            "due_before": "Due before (with offset)",
            "due_after": "Due after (with offset)",
            "overdue": "Open and past due",
            "sort": "Sort key; tasks without a due date come last",
            "project": "One project's tasks (its id), or `inbox` for my own; else both",
            "assignee": "`me`, a user id, or `none`: tasks assigned to them, or to nobody",
            "parent": "A task's subtasks (its id), or `none` for top-level tasks only",
        },
    ),
    "list-notifications": (NotificationQuery, {"unread": "Only unread notifications"}),
    "list-webhook-deliveries": (DeliveryQuery, {"status": "Only deliveries with this status"}),
}
_PAGED = {
    "list-tasks",
    "get-task-history",
    "list-webhooks",
    "list-webhook-deliveries",
    "list-recurring-tasks",
    "list-notifications",
    "list-projects",
    "list-project-members",
    "get-project-events",
    "list-comments",
}
_VERSIONED = {
    "update-task",
    "delete-task",
    "complete-task",
    "update-recurring-task",
    "delete-recurring-task",
    "update-project",
    "delete-project",
    "update-comment",
    "delete-comment",
}
# Operations only some members may call: 403 names the role they need.
_ROLE_BOUND = {
    "update-project",
    "delete-project",
    "add-project-member",
    "update-project-member",
    "remove-project-member",
    "transfer-project",
    "create-task",
    "update-task",
    "delete-task",
    "complete-task",
    "create-comment",
    "update-comment",
    "delete-comment",
}


# A resource id, or a member's user id (the token's `sub`, percent-encoded in the path).
_PATH_PARAMS: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "format": "uuid"},
    "comment_id": {"type": "string", "format": "uuid"},
    "user_id": {"type": "string", "minLength": 1, "maxLength": 255},
}


def _query_schema(model: type[PageQuery], name: str) -> dict[str, Any]:
    """One field of a query model as a parameter's schema: its enums inlined, and without the null a
    parameter never takes (one left out has its default)."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items() if k != "title"}
        return [inline(v) for v in node] if isinstance(node, list) else node

    field = inline(schema["properties"][name])
    branches = [b for b in field.pop("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1:
        field.update(branches[0])
    if field.get("default") is None:
        field.pop("default", None)
    return field


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "next_cursor": {"type": ["string", "null"], "description": "Pass as `cursor` for the next page"},
        },
    }


def _schemas() -> dict[str, Any]:
    models: dict[str, type[BaseModel]] = {
        "TaskCreate": TaskCreate,
        "TaskUpdate": TaskUpdate,
        "TaskPublic": TaskPublic,
        "WebhookCreate": WebhookCreate,
        "WebhookPublic": WebhookPublic,
        "WebhookDeliveryPublic": WebhookDeliveryPublic,
        "RecurringTaskCreate": RecurringTaskCreate,
        "RecurringTaskUpdate": RecurringTaskUpdate,
        "RecurringTaskPublic": RecurringTaskPublic,
        "NotificationPublic": NotificationPublic,
        "ProjectCreate": ProjectCreate,
        "ProjectUpdate": ProjectUpdate,
        "MyProject": MyProject,
        "MemberAdd": MemberAdd,
        "MemberUpdate": MemberUpdate,
        "MemberPublic": MemberPublic,
        "ProjectTransfer": ProjectTransfer,
        "CommentWrite": CommentWrite,
        "CommentPublic": CommentPublic,
        "Snooze": Snooze,
        "SettingsWrite": SettingsWrite,
        "SettingsPublic": SettingsPublic,
    }
    schemas: dict[str, Any] = {}
    for name, model in models.items():
        schema = model.model_json_schema(
            ref_template="#/components/schemas/{model}",
            mode="serialization" if name.endswith("Public") else "validation",
        )
        schemas.update(schema.pop("$defs", {}))
        if name.endswith("Update"):
            # A PATCH field left out stays as it is: it has no default (pydantic's null would read as one).
            for prop in schema["properties"].values():
                prop.pop("default", None)
        schemas[name] = schema
    # Checked by the webhook handlers, not the model: the catalog's types, an http(s) URL.
    hook = schemas["WebhookCreate"]["properties"]
    hook["event_types"]["items"] = {"enum": list(by_name("deliver-webhooks").event_types)}
    hook["url"]["pattern"] = "^https?://"
    schemas["CalendarTokenCreated"] = {
        "type": "object",
        "description": "Shown once: only its hash is kept",
        "required": ["token", "url"],
        "properties": {"token": {"type": "string"}, "url": {"type": "string", "format": "uri"}},
    }
    schemas["WebhookCreated"] = {
        "allOf": [
            _ref("WebhookPublic"),
            {"properties": {"secret": {"type": "string"}}, "required": ["secret"]},
        ]
    }
    schemas["CloudEvent"] = {
        "type": "object",
        "description": "A CloudEvent 1.0 in structured JSON; the catalogue is docs/events.asyncapi.yaml",
        "required": ["specversion", "id", "source", "type", "subject", "time", "data"],
        "properties": {
            **{k: {"type": "string"} for k in ("specversion", "id", "source", "type", "subject")},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "partitionkey": {"type": "string"},
            "userid": {"type": "string"},
            "sequence": {"type": "string", "pattern": "^[0-9]+$"},
            "traceparent": {
                "type": "string",
                "description": "W3C trace context of the request that made the change (distributed tracing)",
                "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            },
            "tracestate": {"type": "string"},
            "data": {"type": "object"},
        },
    }
    schemas["TaskPage"] = _page("TaskPublic")
    schemas["EventPage"] = _page("CloudEvent")
    schemas["WebhookPage"] = _page("WebhookPublic")
    schemas["DeliveryPage"] = _page("WebhookDeliveryPublic")
    schemas["RecurringTaskPage"] = _page("RecurringTaskPublic")
    schemas["NotificationPage"] = _page("NotificationPublic")
    schemas["ProjectPage"] = _page("MyProject")
    schemas["MemberPage"] = _page("MemberPublic")
    schemas["CommentPage"] = _page("CommentPublic")
    schemas["Problem"] = {
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
    return schemas


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def _operation(fn: Function, route: Route) -> dict[str, Any]:
    body, status, result = _IO[(fn.name, route.method)]
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_PARAMS[name]}
        for name in Route.PARAM.findall(route.path)
    ]
    if fn.name in _QUERY:
        model, descriptions = _QUERY[fn.name]
        for name, description in descriptions.items():
            schema = _query_schema(model, name)
            params.append({"name": name, "in": "query", "schema": schema, "description": description})
    if fn.name in _PAGED:
        params += [
            {"name": "limit", "in": "query", "schema": _query_schema(PageQuery, "limit")},
            # Opaque: only a `next_cursor` this API returned is accepted; it is base64url.
            {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"}},
        ]
    if fn.name in _VERSIONED:
        params.append({"name": "If-Match", "in": "header", "schema": {"type": "string"}})
    if fn.name == "create-task":
        key = {"type": "string", "minLength": 1, "maxLength": 255}
        params.append({"name": "Idempotency-Key", "in": "header", "schema": key})
    if fn.name == "get-calendar-feed":
        secret = {"type": "string", "minLength": 1, "maxLength": 200}
        params.append({"name": "token", "in": "query", "required": True, "schema": secret})
    responses: dict[str, Any] = {
        str(status): {"description": "Success"}
        if result is None
        else {"description": "Success", "content": {"application/json": {"schema": _ref(result)}}},
        # The gateway refuses such a path before routing it (devstack/gateway.py).
        "400": _problem("The path holds an encoded separator, a dot segment or a control character"),
        "401": _problem("Missing or invalid bearer token"),
        "422": _problem("Invalid input; `errors` names each field at fault"),
    }
    if params and any(p["in"] == "path" for p in params):
        responses["404"] = _problem("No such resource for this user")
    if fn.name in ("create-task", "list-tasks"):
        responses["404"] = _problem("No such project for this user (`project_id`, `project`)")
    if fn.name in _VERSIONED:
        responses["412"] = _problem("If-Match does not match the current version")
    if fn.name in _ROLE_BOUND:
        responses["403"] = _problem(
            "Your role in the project does not allow it; `detail` names the role needed"
        )
    if fn.name in ("add-project-member", "remove-project-member"):
        responses["409"] = _problem("Already a member (add), or the owner leaving before a transfer (remove)")
    if fn.name == "create-webhook":
        responses["409"] = _problem("The user already has the maximum number of webhooks")
    if not fn.bearer:
        # Calendar apps send no bearer token: the feed's own secret opens it, and names its owner.
        responses["200"] = {
            "description": "The feed",
            "content": {"text/calendar": {"schema": {"type": "string"}}},
        }
        del responses["401"]
        responses["404"] = _problem("No feed has this token (none, rotated or made up)")
    op: dict[str, Any] = {
        "operationId": fn.name if len(fn.routes) == 1 else f"{fn.name}-{route.method.lower()}",
        "summary": fn.summary,
        "description": f"Served by the function `{fn.name}`.",
        "parameters": params,
        "responses": responses,
        **({} if fn.bearer else {"security": []}),
    }
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
        responses["400"] = _problem("Malformed JSON, or a path the gateway refuses")
        for code, text in (("413", "Body over 64 KiB"), ("415", "Not JSON")):
            responses[code] = _problem(text)
    return op


def build_openapi() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for fn in FUNCTIONS:
        for route in fn.routes:
            paths.setdefault(route.path, {})[route.method.lower()] = _operation(fn, route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Todo backend", "version": "1.0.0"},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
