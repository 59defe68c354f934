"""A function process's logging, configured once by its launcher (serve.py): one JSON object per line in
the cluster, readable lines locally, each carrying the function's name and what it is handling.

What it is handling is the log context: fields a request or an inbound event sets around its handling,
added to every line logged meanwhile. `request_id` is set per HTTP request, the `ce_*` fields per
inbound CloudEvent (both in http.py), `trace_id` by the span each of them runs in (tracing.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from todo_backend.settings import Settings

FIELDS = ("request_id", "trace_id", "ce_id", "ce_type", "ce_subject")

# Each request (and so each event delivery) runs in its own asyncio task, with its own copy of this.
_context: ContextVar[Mapping[str, str]] = ContextVar("todo_backend_log_context")


def current() -> Mapping[str, str]:
    """The log context fields bound here, in the order they were bound."""
    return _context.get({})


@contextlib.contextmanager
def context(**fields: str | None) -> Iterator[None]:
    """`with logs.context(ce_id=...)`: `fields` (FIELDS only; None ones are left out) in the log context
    inside the block only."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"not log context fields: {sorted(unknown)}")
    given = {name: value for name, value in fields.items() if value is not None}
    token = _context.set({**current(), **given})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: a traceback is a string field, never lines of its own."""

    def __init__(self, function: str) -> None:
        super().__init__()
        self.function = function

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        entry: dict[str, object] = {
            "time": at.replace("+00:00", "Z"),  # RFC 3339, UTC
            "level": record.levelname,
            "logger": record.name,
            "function": self.function,
            "message": record.getMessage(),
            **current(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A line as the local stack's own: time, level, function, logger and the context, then the message
    (the context before it: a message can span lines, as functions-framework's tracebacks do)."""

    def __init__(self, function: str) -> None:
        super().__init__(datefmt="%H:%M:%S")
        self.function = function

    def usesTime(self) -> bool:
        return True

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{name}={value}" for name, value in current().items())
        where = f"{record.name} [{fields}]" if fields else record.name
        return f"{record.asctime} {record.levelname:<7} {self.function} {where}: {record.message}"


def configure(settings: Settings, function: str) -> None:
    """Send every logger's records at LOG_LEVEL and above to stdout, formatted as LOG_FORMAT says.

    Called once, before functions-framework starts: gunicorn forks its worker from this process, and the
    worker keeps the handler (it touches only its own gunicorn.* and uvicorn.* loggers)."""
    formatter = JsonFormatter(function) if settings.log_format == "json" else TextFormatter(function)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    logging.captureWarnings(True)
