"""The functions' own Prometheus metrics, the contract of the dashboards and alerts in infra/monitoring.

Nothing here runs at import but reading when the process started: the registry and the exporter (a
thread serving /metrics on METRICS_PORT, beside the function's own port) start with the first
observation, after the first request's work. Knative's queue-proxy metrics cover what a pod that scaled
to zero before a scrape could not report.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from todo_backend.settings import get_settings

log = logging.getLogger(__name__)
# The request wrapper observes on the event loop, but nothing stops another thread (a sync background
# task in Starlette's pool, a library callback) from observing at the same moment: the first few may
# race to build the registry.
_build_lock = threading.Lock()
_built: dict[str, Any] = {}
_first_response_seen = threading.Event()


def _process_started() -> float:
    """When this process started, on the time.monotonic() clock: from /proc/self/stat where there is one
    (its start in clock ticks since boot), else now."""
    try:
        stat = Path("/proc/self/stat").read_text()
    except OSError:
        return time.monotonic()
    # Fields are counted after the command, the last ")": it may hold spaces and parentheses itself.
    started_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime
    since_boot = time.clock_gettime(time.CLOCK_BOOTTIME)  # the clock /proc counts that start on
    return time.monotonic() - (since_boot - started_ticks / os.sysconf("SC_CLK_TCK"))


# Read at import, which is in gunicorn's master before it forks the worker: the worker's own start is its
# fork, after the master imported the function's code, and a cold start counts that import too.
_PROCESS_STARTED = _process_started()


def _metrics() -> dict[str, Any]:
    if not _built:
        with _build_lock:
            if not _built:
                _built.update(_build())
    return _built


def _build() -> dict[str, Any]:
    from prometheus_client import Counter, Gauge, Histogram, start_http_server

    port = get_settings().metrics_port
    if port:
        try:
            start_http_server(port)
        except OSError as exc:  # another process of this pod already serves it
            log.warning("metrics exporter not started on %d: %r", port, exc)
    return {
        "requests": Counter(
            "todo_http_requests_total", "HTTP requests served", ["function", "method", "status"]
        ),
        "duration": Histogram(
            "todo_http_request_duration_seconds", "HTTP request duration", ["function", "method"]
        ),
        "events": Counter(
            "todo_events_handled_total", "CloudEvents handled", ["function", "type", "outcome"]
        ),
        "backlog": Gauge("todo_outbox_backlog", "Outbox rows not yet published"),
        "reminders": Counter("todo_reminders_sent_total", "Reminder events emitted"),
        # Labelled, as the others are, and so absent until set: not a 0 from a function that never answers.
        "cold_start": Gauge(
            "todo_cold_start_seconds", "Seconds from process start to the first response", ["function"]
        ),
    }


async def observe_request(function: str, method: str, status: int, seconds: float) -> None:
    # A coroutine, so Starlette runs it on the event loop after the response, not in its thread pool
    # (where it would cost a thread hop per request).
    answered = time.monotonic()  # before the first call builds the metrics: the client waits for none of it
    m = _metrics()
    m["requests"].labels(function, method, str(status)).inc()
    m["duration"].labels(function, method).observe(seconds)
    answered_first(function, answered)


def observe_event(function: str, event_type: str, outcome: str) -> None:
    answered = time.monotonic()
    _metrics()["events"].labels(function, event_type, outcome).inc()
    answered_first(function, answered)


def answered_first(function: str, answered: float | None = None) -> None:
    """The cold start, once per process: from its start to its first answer (a response, an event
    handled, a tick done), `answered` or now."""
    if _first_response_seen.is_set():
        return
    at = time.monotonic() if answered is None else answered
    cold_start = _metrics()["cold_start"]  # outside the lock: the first call builds under it too
    with _build_lock:  # concurrent first answers: the first one sets it, once per process
        if not _first_response_seen.is_set():
            cold_start.labels(function).set(at - _PROCESS_STARTED)
            _first_response_seen.set()


def set_outbox_backlog(rows: int) -> None:
    _metrics()["backlog"].set(rows)


def count_reminders(sent: int) -> None:
    _metrics()["reminders"].inc(sent)
