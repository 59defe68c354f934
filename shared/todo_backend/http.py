"""HTTP helpers for function entries: JSON in and out, RFC 9457 problems, auth, ETags; and the answer
an event entry gives the dispatcher."""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import asyncpg
from cloudevents.http import CloudEvent
from pydantic import BaseModel, ValidationError
from starlette.background import BackgroundTasks
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from todo_backend import logs, tracing
from todo_backend.auth import Unauthorized, authenticate
from todo_backend.bootstrap import collecting_commits, publish_now
from todo_backend.errors import DomainError, NotFound, Unprocessable
from todo_backend.fields import user_id_problem
from todo_backend.metrics import answered_first, observe_request
from todo_backend.settings import get_settings

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
M = TypeVar("M", bound=BaseModel)


class Problem(Exception):
    """An RFC 9457 problem; raised anywhere in a request, rendered by `http_function`."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        slug: str = "about:blank",
        errors: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.slug = status, title, detail, slug
        self.errors, self.headers = errors, dict(headers or {})

    def response(self) -> Response:
        body: dict[str, Any] = {
            "type": self.slug if self.slug == "about:blank" else f"/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        return Response(_dumps(body), self.status, self.headers, media_type=PROBLEM_JSON)


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(_dumps(data), status, dict(headers or {}), media_type="application/json")


def _field(loc: tuple[int | str, ...], prefix: str) -> str:
    if not loc:
        return prefix or "body"
    # A name can be empty (`?=x`, `{"": 1}`); quoted, the field still names something.
    return prefix + ".".join(str(p) if p != "" else '""' for p in loc)


def validation_problem(exc: ValidationError, prefix: str = "") -> Problem:
    errors = [{"field": _field(err["loc"], prefix), "message": err["msg"]} for err in exc.errors()]
    return Problem(422, "Unprocessable Content", "the request has invalid fields", "validation-error", errors)


def parse(model: type[M], data: Any, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc, prefix) from exc


async def read_json(request: Request, model: type[M]) -> M:
    """The request body as `model`: 415, 413, 400 or 422 problems for what it is not."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise Problem(415, "Unsupported Media Type", "the body must be application/json")
    limit = get_settings().max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Problem(413, "Content Too Large", f"the body must be at most {limit} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Problem(413, "Content Too Large", f"the body must be at most {limit} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Problem(400, "Bad Request", f"the body is not valid JSON: {exc}", "malformed-json") from exc
    if not isinstance(data, dict):
        raise Unprocessable("the body must be a JSON object", "body")
    return parse(model, data)


def path_uuid(request: Request, index: int) -> uuid.UUID:
    """Path segment `index` as a UUID; anything else names no resource (404)."""
    segments = request.url.path.strip("/").split("/")
    try:
        return uuid.UUID(segments[index])
    except (IndexError, ValueError) as exc:
        raise NotFound("no such resource") from exc


def path_user_id(request: Request, index: int) -> str:
    """Path segment `index` as a user id, as the client meant it: percent-decoded (a member's user id may
    hold any character but "/", which the gateway refuses encoded) and never parsed again as a URL,
    where a decoded "?" or "#" would end the path early. One no token could hold names no user (404)."""
    segments = request.scope["path"].strip("/").split("/")
    if index >= len(segments) or user_id_problem(segments[index]):
        raise NotFound("no such resource")  # no user has that id
    return segments[index]


def query_params(request: Request, repeatable: Iterable[str]) -> dict[str, Any]:
    """The query string as a dict: repeatable names map to lists, others to their last value."""
    many = set(repeatable)
    return {
        key: request.query_params.getlist(key) if key in many else request.query_params[key]
        for key in request.query_params
    }


def etag(version: int) -> str:
    return f'"{version}"'


def if_match(request: Request) -> frozenset[int] | None:
    """The versions `If-Match` accepts; None when absent or `*`. Unparseable tags match nothing."""
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    versions = set()
    for tag in header.split(","):
        tag = tag.strip()
        # Weak tags never match under If-Match's strong comparison (RFC 9110 13.1.1).
        if tag.startswith('"') and tag.endswith('"') and tag[1:-1].isdigit():
            versions.add(int(tag[1:-1]))
    return frozenset(versions)


def _domain_problem(exc: DomainError) -> Problem:
    errors = [{"field": exc.field, "message": exc.detail}] if exc.field else None
    return Problem(exc.status, exc.title, exc.detail, exc.slug, errors)


UserHandler = Callable[[Request, str], Awaitable[Response]]
EventHandler = Callable[[CloudEvent], Awaitable[None]]


def event_function(handler: EventHandler) -> EventHandler:
    """Wrap an event entry: a domain error becomes the status the dispatcher acts on (422 for a poison
    event, dead-lettered; 503 to retry). Anything else is a 500, retried too. It runs in a span that
    continues the event's trace, and what it logs carries the event's id, type and subject."""

    name = handler.__name__.replace("_", "-")

    @functools.wraps(handler)
    async def entry(event: CloudEvent) -> None:
        parent = tracing.parse(event.get("traceparent"), event.get("tracestate"))
        try:
            with (
                tracing.span(name, parent, kind="CONSUMER"),
                logs.context(
                    ce_id=event.get("id"), ce_type=event.get("type"), ce_subject=event.get("subject")
                ),
            ):
                await handler(event)
        except DomainError as exc:
            raise HTTPException(exc.status, exc.detail) from exc

    return entry


def _request_id(request: Request) -> str:
    # The id Knative's (or a client's) X-Request-Id gives, bounded: it is the client's to choose.
    return request.headers.get("x-request-id", "")[:128] or uuid.uuid4().hex[:16]


def _parent(request: Request) -> tracing.TraceContext | None:
    # Several tracestate headers are one list (W3C Trace Context §3.3.1.1).
    state = ",".join(request.headers.getlist("tracestate")) or None
    return tracing.parse(request.headers.get("traceparent"), state)


def cron_function(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a cron entry (a tick PingSource calls): a span under the call's trace context, if it has
    one, and the request id in what it logs, so the rows a tick writes carry its trace."""

    name = handler.__name__.replace("_", "-")

    @functools.wraps(handler)
    async def entry(request: Request) -> Response:
        with tracing.span(name, _parent(request)), logs.context(request_id=_request_id(request)):
            response = await handler(request)
        answered_first(name)
        return response

    return entry


async def bearer_user(request: Request) -> str:
    """The user the request's bearer token names (auth.py); Unauthorized without a valid one."""
    return authenticate(request.headers.get("authorization"), get_settings())


def http_function(
    handler: UserHandler, identify: Callable[[Request], Awaitable[str]] = bearer_user
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a function entry: find whose request it is (`identify`: the bearer token's user unless an
    entry names another way), pass the user id, render every failure as problem+json."""

    name = handler.__name__.replace("_", "-")

    @functools.wraps(handler)
    async def entry(request: Request) -> Response:
        started = time.perf_counter()
        with (
            tracing.span(f"{request.method} {name}", _parent(request)),
            logs.context(request_id=_request_id(request)),
        ):
            async with collecting_commits() as keys:
                response = await _respond(request)
        # After the response is sent: the client never waits on the broker or the metrics.
        response.background = BackgroundTasks()
        if keys:
            response.background.add_task(publish_now, keys)
        response.background.add_task(
            observe_request, name, request.method, response.status_code, time.perf_counter() - started
        )
        return response

    async def _respond(request: Request) -> Response:
        try:
            try:
                user_id = await identify(request)
            except Unauthorized as exc:
                # RFC 6750 3.1: no error code when the request carried no credentials at all.
                sent = "authorization" in request.headers
                challenge = 'Bearer error="invalid_token"' if sent else "Bearer"
                raise Problem(
                    401, "Unauthorized", exc.detail, "unauthorized", headers={"WWW-Authenticate": challenge}
                ) from exc
            return await handler(request, user_id)
        except Problem as problem:
            return problem.response()
        except DomainError as exc:
            return _domain_problem(exc).response()
        except Exception as exc:
            if not isinstance(exc, _unavailable()):
                log.exception("unhandled error in %s", handler.__name__)
                return Problem(500, "Internal Server Error", "an unexpected error occurred").response()
            # Database or network unreachable: the client may retry; nothing was committed.
            log.warning("dependency unavailable: %r", exc)
            return Problem(
                503,
                "Service Unavailable",
                "a dependency is unavailable; retry later",
                headers={"Retry-After": "1"},
            ).response()

    return entry


def _unavailable() -> tuple[type[BaseException], ...]:
    """What says the database or the network is out of reach (and the client may retry): from asyncpg
    directly, or wrapped by SQLAlchemy where the process has loaded it (create-task never does)."""
    kinds: tuple[type[BaseException], ...] = (
        OSError,
        TimeoutError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
        asyncpg.TooManyConnectionsError,
    )
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None:
        kinds += (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
    return kinds


def public_base(request: Request) -> str:
    """The scheme and host the client reached us by: the last X-Forwarded-Proto and -Host, the ones
    the ingress (or the local gateway) appended, where they are set; else the request's own. Earlier
    values are the client's to send, so they are never taken."""
    proto = request.headers.get("x-forwarded-proto", request.url.scheme).split(",")[-1].strip()
    host = request.headers.get("x-forwarded-host", request.url.netloc).split(",")[-1].strip()
    return f"{proto}://{host}"


def versioned_response(
    resource: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A resource's JSON with its `ETag` (its version), for If-Match on the next change."""
    return json_response(resource, status, {"ETag": etag(resource["version"]), **(headers or {})})


def rendered_response(
    body: str, *, version: int, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A resource's JSON rendered already, with its `ETag`: the response is not encoded twice."""
    return Response(body, status, {"ETag": etag(version), **(headers or {})}, media_type="application/json")
