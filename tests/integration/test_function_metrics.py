"""A function's first requests after a cold start arrive together; each must be counted, none must fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

# A fresh interpreter is a cold start: the metrics are created by the first observations. The HTTP
# wrapper makes them on the event loop, but nothing stops another thread (Starlette's pool running a
# sync background task, a library callback) from observing at the same moment: build them safely.
COLD_START = """
import asyncio, json, threading, time
import prometheus_client
from prometheus_client import REGISTRY
from todo_backend import metrics


class SlowCounter(prometheus_client.Counter):
    # The first observation imports and builds the metrics; make that take as long as it can on a
    # busy node, so that concurrent first requests overlap every time rather than by chance.
    def __init__(self, *args, **kwargs):
        time.sleep(0.05)
        super().__init__(*args, **kwargs)


prometheus_client.Counter = SlowCounter

barrier = threading.Barrier(8)
errors = []

def first_request():
    barrier.wait()
    try:
        asyncio.run(metrics.observe_request("create-task", "POST", 201, 0.01))
    except Exception as exc:
        errors.append(type(exc).__name__)

threads = [threading.Thread(target=first_request) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
labels = {"function": "create-task", "method": "POST", "status": "201"}
print(json.dumps({"errors": errors, "count": REGISTRY.get_sample_value("todo_http_requests_total", labels)}))
"""


def _fresh_interpreter(script: str, jwt_secret: str, *args: str) -> Any:
    """What `script` prints (JSON) in a fresh interpreter: no exporter port, and a database nothing here
    connects to."""
    env = {
        **os.environ,
        "TODO_ENV": "test",
        "JWT_SECRET": jwt_secret,
        "DATABASE_URL": "postgresql://unused@127.0.0.1:1/unused",
    }
    env.pop("METRICS_PORT", None)
    result = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout)


def test_concurrent_first_requests_after_a_cold_start_are_each_counted_without_errors(
    jwt_secret: str,
) -> None:
    assert _fresh_interpreter(COLD_START, jwt_secret) == {"errors": [], "count": 8.0}


# Event and cron functions answer no HTTP request of their own: their first event handled, or first
# tick done, ends their cold start; it is observed once, whatever comes after.
FIRST_ANSWERS = """
import json, sys
from prometheus_client import REGISTRY
from todo_backend import metrics

first = sys.argv[1]
if first == "event":
    metrics.observe_event("deliver-webhooks", "dev.todo.task.created", "handled")
else:  # a cron tick's end: the process's very first observation
    metrics.answered_first("relay-outbox")
metrics.observe_event("deliver-webhooks", "dev.todo.task.created", "handled")
metrics.answered_first("relay-outbox")
value = lambda f: REGISTRY.get_sample_value("todo_cold_start_seconds", {"function": f})
print(json.dumps({f: value(f) for f in ("deliver-webhooks", "relay-outbox")}))
"""


@pytest.mark.parametrize(("first", "function"), [("event", "deliver-webhooks"), ("tick", "relay-outbox")])
def test_the_first_event_handled_or_tick_done_ends_the_cold_start_once(
    jwt_secret: str, first: str, function: str
) -> None:
    observed = _fresh_interpreter(FIRST_ANSWERS, jwt_secret, first)
    assert 0 < observed.pop(function) < 30
    assert observed == {"deliver-webhooks" if function == "relay-outbox" else "relay-outbox": None}
