"""What the end-to-end tests run beside the stack: a webhook receiver, patience, and a drained dispatcher."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from todo_backend import catalog
from todo_backend.messaging import topic_for
from todo_backend.settings import get_settings


class Receiver:
    """A webhook endpoint run by the test: records every POST it gets."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


def wait_for(
    condition: Callable[[], bool], seconds: float = 30.0, tick: Callable[[], object] | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        if tick:
            tick()
        time.sleep(0.25)


async def _lags(bootstrap: str) -> dict[str, int]:
    """By trigger: the records on its topics its consumer group has not committed past yet."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def lag(fn: catalog.Function) -> int:
        # Not subscribed, so it never joins the group: it only reads the group's committed offsets.
        group = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=f"trigger-{fn.name}", enable_auto_commit=False
        )
        await group.start()
        try:
            await group.topics()  # the partitions of every topic
            partitions = [
                TopicPartition(topic, p)
                for topic in sorted({topic_for(t, get_settings()) for t in fn.event_types})
                for p in sorted(group.partitions_for_topic(topic) or ())
            ]
            ends = await group.end_offsets(partitions)
            behind = 0
            for tp in partitions:
                # Tansu can report a partition's end one short of a record the group has already
                # committed past (seen as a lag of -1 that never changed in 60 s): past the end is none.
                behind += max(0, ends[tp] - (await group.committed(tp) or 0))
            return behind
        finally:
            await group.stop()

    triggers = [fn for fn in catalog.FUNCTIONS if fn.event_types]
    return dict(zip((fn.name for fn in triggers), await asyncio.gather(*map(lag, triggers)), strict=True))


def drained(bootstrap: str, seconds: float = 60.0) -> None:
    """Wait until every trigger has handled (answered, or dead-lettered) every record on the broker: from
    then on, what the stack delivers can be counted, since nothing is left in flight in the dispatcher."""
    lags: dict[str, int] = {}

    def settled() -> bool:
        lags.update(asyncio.run(_lags(bootstrap)))
        return not any(lags.values())

    try:
        wait_for(settled, seconds)
    except AssertionError as exc:
        raise AssertionError(f"the triggers did not drain: records behind, by trigger: {lags}") from exc
