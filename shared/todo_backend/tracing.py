"""W3C Trace Context end to end: a request's `traceparent` is kept with the outbox rows it writes, travels
on the broker as the CloudEvents distributed-tracing extension (`traceparent`, `tracestate`), is
continued by every consumer and cron, and is sent on webhook POSTs.

Each request, event delivery and cron tick runs in a span: the child of the trace context it came with
(a new trace without one), current for its handling, its trace id in the log context. Propagation is a
few string operations. Spans are exported with OpenTelemetry only when OTEL_EXPORTER_OTLP_ENDPOINT is
set: `configure` imports the SDK then, and never otherwise, so a cold start without it pays nothing.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from todo_backend import logs

if TYPE_CHECKING:
    from todo_backend.settings import Settings

# version-traceid-parentid-flags; an all-zero id and version ff are invalid (W3C Trace Context §3.2).
# A later version may append fields after a "-": its first 55 characters are read as version 00.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)
_TRACESTATE = re.compile(r"[\x20-\x7e]{1,512}")  # printable ASCII; at most 32 members of 256 chars each


@dataclass(frozen=True)
class TraceContext:
    traceparent: str
    tracestate: str | None = None

    @property
    def trace_id(self) -> str:
        return self.traceparent[3:35]


def parse(traceparent: object, tracestate: object = None) -> TraceContext | None:
    """The trace context in these two values (headers or CloudEvent attributes), or None when
    `traceparent` is absent or malformed: a caller's bad header starts a new trace, never an error."""
    match = _TRACEPARENT.fullmatch(traceparent) if isinstance(traceparent, str) else None
    if match is None or match[1] == "ff" or set(match[2]) == {"0"} or set(match[3]) == {"0"}:
        return None
    if match[5] is not None and match[1] == "00":  # version 00 has exactly four fields
        return None
    state = tracestate if isinstance(tracestate, str) and _TRACESTATE.fullmatch(tracestate) else None
    return TraceContext(f"00-{match[2]}-{match[3]}-{match[4]}", state)


_current: ContextVar[TraceContext | None] = ContextVar("todo_backend_trace", default=None)


def current() -> TraceContext | None:
    """The context of the span being handled here: what the outbox rows written now carry."""
    return _current.get()


def child_of(parent: TraceContext | None) -> TraceContext:
    """A new span's context under `parent`: its trace and flags, a span id of its own. Without a parent,
    a new trace, not sampled (nothing here records it unless OpenTelemetry's sampler says so)."""
    span_id = secrets.token_hex(8)
    if parent is None:
        return TraceContext(f"00-{secrets.token_hex(16)}-{span_id}-00")
    return TraceContext(f"{parent.traceparent[:36]}{span_id}{parent.traceparent[52:]}", parent.tracestate)


_tracer: Any = None  # an OpenTelemetry Tracer once `configure` found an endpoint


def configure(settings: Settings, function_name: str) -> None:
    """Export spans to OTEL_EXPORTER_OTLP_ENDPOINT (OTLP over HTTP) when it is set; called once per
    process by its launcher. The exporter reads the other OTEL_EXPORTER_OTLP_* variables itself."""
    global _tracer
    if not settings.otel_exporter_otlp_endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Its batch thread is started again in the worker gunicorn forks (the SDK registers at_fork).
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: function_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _tracer = provider.get_tracer("todo_backend")


@contextlib.contextmanager
def span(name: str, parent: TraceContext | None, *, kind: str = "SERVER") -> Iterator[TraceContext]:
    """Handle one request, event, tick or webhook attempt in a span under `parent` (SERVER, CONSUMER,
    CLIENT)."""
    with _exported(name, parent, kind) as context:
        token = _current.set(context)
        try:
            with logs.context(trace_id=context.trace_id):
                yield context
        finally:
            _current.reset(token)


@contextlib.contextmanager
def _exported(name: str, parent: TraceContext | None, kind: str) -> Iterator[TraceContext]:
    if _tracer is None:
        yield child_of(parent)
        return
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    carrier = (
        {} if parent is None else {"traceparent": parent.traceparent, "tracestate": parent.tracestate or ""}
    )
    with _tracer.start_as_current_span(name, context=propagator.extract(carrier), kind=trace.SpanKind[kind]):
        out: dict[str, str] = {}
        propagator.inject(out)
        # Nothing injected when the SDK is disabled (OTEL_SDK_DISABLED: a no-op tracer, an invalid span).
        injected = parse(out.get("traceparent"), out.get("tracestate"))
        yield injected or child_of(parent)
