"""A function's first requests after a cold start arrive together; each must be counted, none must fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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


def test_concurrent_first_requests_after_a_cold_start_are_each_counted_without_errors(
    jwt_secret: str,
) -> None:
    env = {
        **os.environ,
        "TODO_ENV": "test",
        "JWT_SECRET": jwt_secret,
        "DATABASE_URL": "postgresql://unused@127.0.0.1:1/unused",  # nothing here connects
    }
    env.pop("METRICS_PORT", None)
    result = subprocess.run(
        [sys.executable, "-c", COLD_START], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    outcome = json.loads(result.stdout)
    assert outcome == {"errors": [], "count": 8.0}
