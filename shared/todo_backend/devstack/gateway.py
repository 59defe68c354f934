"""The local stand-in for the production ingress: one URL in front of every function process."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import httpx
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from todo_backend import catalog
from todo_backend.http import Problem

if TYPE_CHECKING:
    from todo_backend.devstack.activator import Activator

logger = logging.getLogger(__name__)

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# RFC 9110 section 7.6.1: these describe one connection, so a proxy never forwards them.
# Host is dropped too: the function is addressed by its own URL, as Knative routes by host.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
# The server in front of the gateway adds its own; passing the function's along would repeat them.
ORIGIN_ONLY = frozenset({"date", "server"})
# Set afresh by the gateway, as an ingress would, rather than trusted from the client.
FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"})
# A path every function answers without running user code: functions-framework serves a 404 for
# /robots.txt itself (HTTP functions) or a 405 for any GET (CloudEvent functions).
PROBE_PATH = "/robots.txt"
# Methods a request may be sent twice with (RFC 9110 section 9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# How long a request waits for a function that refuses connections (it is starting, or the supervisor
# is restarting it), as Knative's activator holds requests for a pod that is starting.
START_WAIT_SECONDS = 20.0
# Below the functions' own keep-alive timeout (gunicorn's 2 s): the gateway drops an idle pooled
# connection before the function closes it, so it never reuses one being closed under it.
KEEPALIVE_EXPIRY_SECONDS = 1.0
# In a raw path: an encoded separator, NUL or other control, or anything not ASCII. Routing on the
# decoded path would let `..%2F` climb to another route, and httpx refuses control characters.
UNSAFE_IN_PATH = re.compile(r"%(2f|5c|[01][0-9a-f]|7f)|[^\x21-\x7e]", re.IGNORECASE)
DOT_SEGMENTS = frozenset({".", ".."})
# How long /metrics waits for one function's exporter: a slow one is reported, not waited for.
SCRAPE_TIMEOUT_SECONDS = 2.0

# Swagger UI's files, served from the copy of swagger-ui-dist that swagger-ui-py ships (the dev extra),
# so /docs works offline. validatorUrl null: the badge would send the document to validator.swagger.io.
DOCS_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>todo API</title>
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", validatorUrl: null});</script>
</body></html>
"""


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    """An RFC 9457 problem, in the shape every function answers with."""
    return Problem(status, HTTPStatus(status).phrase, detail, headers=headers).response()


def create_gateway(
    upstreams: dict[str, str],
    also_down: Callable[[], list[str]] = list,
    start_wait_seconds: float = START_WAIT_SECONDS,
    metrics: Mapping[str, str] | None = None,
    activator: Activator | None = None,
) -> Starlette:
    """Route /api/... by the catalog, /_fn/<name>/... straight to one function; `upstreams` maps
    function names to base URLs such as http://127.0.0.1:9101. `also_down` names the other parts of
    the stack that are down (the local eventing), for /healthz. `metrics` maps function names to the
    base URLs of their exporters (http://127.0.0.1:9464), which /metrics reads together.

    With an `activator` the functions scale to zero: a request waits while its function starts, and
    /healthz asks the activator which functions are down (one at zero is not) instead of probing them.
    Without one, every function is expected up and /healthz probes each."""
    exporters = dict(metrics or {})
    assets = _docs_assets()
    # One client for every request, so connections to the functions are pooled.
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(60.0, connect=5.0),
        limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS),
    )

    async def forward(request: Request, name: str, path: str) -> Response:
        if activator is None:
            return await _proxy(client, request, upstreams[name], path, time.monotonic() + start_wait_seconds)
        try:
            async with activator.serving(name):
                deadline = time.monotonic() + start_wait_seconds
                return await _proxy(client, request, upstreams[name], path, deadline)
        except RuntimeError as err:
            logger.warning("%s", err)
            return problem(503, f"function {name} could not be started; see the stack's log")

    async def api(request: Request) -> Response:
        path = _raw_path(request)
        if isinstance(path, Response):
            return path
        match = catalog.match_route(request.method, unquote(path))
        if match is None:
            return _no_route(request.method, unquote(path))
        fn, _ = match
        if fn.name not in upstreams:
            return problem(503, f"function {fn.name} is not running in this stack")
        return await forward(request, fn.name, path)

    async def direct(request: Request) -> Response:
        path = _raw_path(request)
        if isinstance(path, Response):
            return path
        # The raw path is /_fn/<name>/<rest>; a name cannot hide a slash, refused above.
        _, _, name, rest = path.split("/", 3)
        if unquote(name) not in upstreams:
            return problem(404, f"no function named {unquote(name)!r} runs in this stack")
        return await forward(request, unquote(name), "/" + rest)

    async def healthz(request: Request) -> Response:
        if activator is None:
            names = list(upstreams)
            answers = await asyncio.gather(*(_is_up(client, upstreams[name]) for name in names))
            down = [name for name, up in zip(names, answers, strict=True) if not up] + also_down()
        else:
            down = activator.down() + also_down()
        if down:
            return JSONResponse({"status": "unavailable", "down": down}, 503)
        return JSONResponse({"status": "ok"})

    async def openapi(request: Request) -> Response:
        from todo_backend.openapi import build_openapi  # the gateway must start without it

        return JSONResponse(build_openapi())

    async def docs(request: Request) -> Response:
        return HTMLResponse(DOCS_HTML)

    async def docs_asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in DOCS_ASSETS:
            return problem(404, f"no docs asset named {name!r}")
        if assets is None:
            return problem(503, "Swagger UI's files are not installed: pip install -e '.[dev]'")
        return FileResponse(assets / name, media_type=DOCS_ASSETS[name])

    async def metrics_page(request: Request) -> Response:
        names = list(exporters)
        scraped = await asyncio.gather(*(_scrape(client, exporters[name]) for name in names))
        body = _exposition(dict(zip(names, scraped, strict=True)))
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = f"{request.method} {request.url.path}: {exc.detail}"
        return problem(exc.status_code, detail, exc.headers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/docs/assets/{name}", docs_asset, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/_fn/{name}/{rest:path}", direct, methods=METHODS),
        Route("/api/{rest:path}", api, methods=METHODS),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)


def _docs_assets() -> Path | None:
    """swagger-ui-py's copy of swagger-ui-dist, found without importing the package (its framework
    adapters import Jinja2 and PyYAML); None when it is not installed."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "static"


async def _scrape(client: httpx.AsyncClient, base_url: str) -> list[Metric] | str:
    """The metric families the exporter at `base_url` serves, or why they could not be read."""
    try:
        async with asyncio.timeout(SCRAPE_TIMEOUT_SECONDS):
            response = await client.get(base_url + "/metrics")
        response.raise_for_status()
        return list(text_string_to_metric_families(response.text))
    except httpx.ConnectError as err:
        # A function's exporter starts with its first observation (metrics.py), so an idle one has none.
        return f"nothing listens at {base_url} (down, or it has served no request yet): {err!r}"
    except (httpx.HTTPError, TimeoutError, ValueError) as err:
        return f"{base_url}: {err!r}"


class _Scraped(Collector):
    """Families read from the functions, for prometheus_client to write out."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def _exposition(scraped: Mapping[str, list[Metric] | str]) -> bytes:
    """Every function's metrics in one text exposition, each series labelled with its function as a
    Prometheus scrape labels it with its target; one that could not be read is a comment line and a 0 in
    todo_gateway_scrape_up. Families of one name are merged: the format allows each only once."""
    families: dict[str, Metric] = {}
    up = GaugeMetricFamily(
        "todo_gateway_scrape_up", "1 if the gateway read the function's metrics, else 0", labels=["function"]
    )
    comments = []
    for function, result in scraped.items():
        up.add_metric([function], 0 if isinstance(result, str) else 1)
        if isinstance(result, str):
            comments.append(f"# {function}: not scraped: {' '.join(result.split())}\n")
            continue
        for family in result:
            merged = families.setdefault(
                family.name, Metric(family.name, family.documentation, family.type, family.unit)
            )
            merged.samples += [_labelled(sample, function) for sample in family.samples]
    return "".join(comments).encode() + generate_latest(_Scraped([*families.values(), up]))


def _labelled(sample: Sample, function: str) -> Sample:
    """`sample` labelled with the function it came from. A `function` label of its own that says
    otherwise is kept as `exported_function`, as Prometheus keeps a scraped label clashing with a target's."""
    labels = dict(sample.labels)
    own = labels.pop("function", function)
    if own != function:
        labels["exported_function"] = own
    return sample._replace(labels={**labels, "function": function})


def _raw_path(request: Request) -> str | Response:
    """The path as the client sent it (still percent-encoded), or a 400 problem if it is unsafe to route:
    it is routed on its decoded form and forwarded as sent, so the two must mean the same segments."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1")
    if UNSAFE_IN_PATH.search(path) or DOT_SEGMENTS & {unquote(s) for s in path.split("/")}:
        shown = path if path.isascii() and path.isprintable() else repr(raw)
        detail = f"the path {shown} holds an encoded separator, a dot segment or a control character"
        return problem(400, detail)
    return path


def _no_route(method: str, path: str) -> Response:
    allowed = sorted({r.method for fn in catalog.FUNCTIONS for r in fn.routes if r.pattern().match(path)})
    if allowed:
        detail = f"{method} is not allowed on {path}"
        return problem(405, detail, {"Allow": ", ".join(allowed)})
    return problem(404, f"no route for {method} {path}")


async def _proxy(
    client: httpx.AsyncClient, request: Request, base_url: str, path: str, start_deadline: float
) -> Response:
    """Forward the request as the ingress would and stream the function's response back."""
    headers = [(k, v) for k, v in request.headers.items() if k not in HOP_BY_HOP | FORWARDED]
    headers += [
        ("x-forwarded-for", request.client.host if request.client else ""),
        ("x-forwarded-host", request.headers.get("host", "")),
        ("x-forwarded-proto", request.url.scheme),
    ]
    # The body is read whole: functions cap it at a few KiB anyway, and a Content-Length (rather
    # than a chunked upload) is what they receive behind the real ingress.
    upstream = client.build_request(
        request.method,
        base_url + path,
        params=request.url.query,
        headers=headers,
        content=await request.body(),
    )
    try:
        response = await _send(client, upstream, start_deadline)
    except httpx.TransportError as err:
        logger.warning("upstream %s failed: %r", base_url, err)
        return problem(502, f"the function at {base_url} did not answer: {err!r}")
    proxied = StreamingResponse(
        response.aiter_raw(),  # raw: any content-encoding passes through with its content-length
        status_code=response.status_code,
        background=BackgroundTask(response.aclose),
    )
    # Raw header pairs, so repeated headers (Set-Cookie, Vary...) stay separate.
    proxied.raw_headers = [
        (k, v) for k, v in response.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP | ORIGIN_ONLY
    ]
    return proxied


async def _send(client: httpx.AsyncClient, upstream: httpx.Request, start_deadline: float) -> httpx.Response:
    """Send, again where that is safe: while the function refuses connections (nothing reached it),
    until `start_deadline`; once more when the connection failed as the request was written (it never
    arrived whole); and once more, for idempotent methods only, when a pooled connection closed
    before any response (the function may have received it: a POST is never sent twice)."""
    resent = False
    while True:
        try:
            return await client.send(upstream, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            if time.monotonic() >= start_deadline:
                raise
            await asyncio.sleep(0.1)
        except httpx.WriteError as err:
            if resent:
                raise
            logger.info("upstream connection failed while sending, sending again: %r", err)
            resent = True
        except (httpx.RemoteProtocolError, httpx.ReadError) as err:
            if resent or upstream.method not in IDEMPOTENT:
                raise
            logger.info("upstream closed the connection without answering, sending again: %r", err)
            resent = True


async def _is_up(client: httpx.AsyncClient, base_url: str) -> bool:
    """Any HTTP answer means the process serves; only a transport failure means down."""
    try:
        await client.get(base_url + PROBE_PATH, timeout=2.0)
    except httpx.TransportError:
        return False
    return True
