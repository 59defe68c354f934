"""Cursor pagination: the page query, opaque cursors, a page of JSON items, and the (created_at, id)
keyset most lists page by. Pure: no HTTP, no I/O."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, tuple_

from todo_backend.errors import Unprocessable
from todo_backend.stored import StoredEvent, to_cloudevent_json

T = TypeVar("T")


class PageQuery(BaseModel):
    """Cursor pagination parameters; unknown query parameters are refused."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = None


def encode_cursor(values: Mapping[str, Any]) -> str:
    text = json.dumps(values, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise Unprocessable("the cursor is not one this API issued", "cursor") from exc
    if not isinstance(data, dict):
        raise Unprocessable("the cursor is not one this API issued", "cursor")
    return data


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None = None

    def json(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


def after_sequence(raw: str) -> int:
    """The outbox sequence an events cursor of ours holds (a task's history, a project's feed)."""
    after = decode_cursor(raw).get("after")
    if type(after) is not int or not 0 <= after < 2**63:
        raise Unprocessable("the cursor is not one this API issued", "cursor")
    return after


def events_page(rows: Sequence[StoredEvent], limit: int) -> Page:
    """The page of CloudEvents a query by sequence fetched, one row more than `limit`."""
    next_cursor = encode_cursor({"after": rows[limit - 1].sequence}) if len(rows) > limit else None
    return Page([to_cloudevent_json(row) for row in rows[:limit]], next_cursor)


def _creation_keyset(raw: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor of ours holds; a forged one is 422 and never reaches a query."""
    cursor = decode_cursor(raw)
    try:
        created_at = datetime.fromisoformat(cursor["created_at"])
        if created_at.tzinfo is None:
            raise ValueError("naive datetime")
        return created_at.astimezone(UTC), uuid.UUID(cursor["id"])
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise Unprocessable("the cursor is not one this API issued", "cursor") from exc


def by_creation(
    stmt: Select[tuple[T]], entity: Any, query: PageQuery, *, newest_first: bool
) -> Select[tuple[T]]:
    """`stmt` in (created_at, id) order, past the query's cursor, one row more than a page."""
    keys = tuple_(entity.created_at, entity.id)
    if query.cursor:
        after = tuple_(*_creation_keyset(query.cursor))
        stmt = stmt.where(keys < after if newest_first else keys > after)
    order = (entity.created_at.desc(), entity.id.desc()) if newest_first else (entity.created_at, entity.id)
    return stmt.order_by(*order).limit(query.limit + 1)


def creation_page(rows: Sequence[Any], limit: int, render: Callable[[Any], Any]) -> Page:
    """The page of rows `by_creation` fetched: the extra row, if any, says another page follows."""
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor({"created_at": rows[-1].created_at.isoformat(), "id": str(rows[-1].id)})
    return Page([render(row) for row in rows], next_cursor)
