"""An outbox row as it is read back (a stored CloudEvent) and its structured JSON: what the publishers
and the history read, without the event types or the models behind them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from todo_backend.fields import rfc3339


class StoredEvent(Protocol):
    """An outbox row as the publishers read it: a TaskEvent, or the relay's plain row of the same
    columns, whose `data` is the stored JSON text, sent as it is."""

    @property
    def sequence(self) -> int | None: ...
    @property
    def id(self) -> uuid.UUID: ...
    @property
    def type(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    @property
    def partition_key(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def data(self) -> dict[str, Any] | str: ...
    @property
    def project_id(self) -> str | None: ...
    @property
    def traceparent(self) -> str | None: ...
    @property
    def tracestate(self) -> str | None: ...


def to_cloudevent_json(row: StoredEvent) -> dict[str, Any]:
    """The structured-mode JSON of a stored CloudEvent (CloudEvents 1.0, with our extensions)."""
    return {
        "specversion": "1.0",
        "id": str(row.id),
        "source": row.source,
        "type": row.type,
        "subject": row.subject,
        "time": rfc3339(row.time),
        "datacontenttype": "application/json",
        "partitionkey": row.partition_key,
        "userid": row.user_id,
        # The outbox position, a decimal string (binary mode carries every attribute as one): it grows
        # with commit order, so whoever gets a subject's events out of order can tell which is newer.
        "sequence": str(row.sequence),
        # The project the event is about: whose members may see it (the activity feed's key).
        **({"projectid": row.project_id} if row.project_id else {}),
        # The CloudEvents distributed-tracing extension, when the change was made in a traced span.
        **({"traceparent": row.traceparent} if row.traceparent else {}),
        **({"tracestate": row.tracestate} if row.tracestate else {}),
        "data": row.data,
    }
