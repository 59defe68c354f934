"""Field types of the request and response models, in pydantic alone: the SQLModel families in
models.py use them, and so do the validators derived from those families for the hot paths (derived.py),
which must not import SQLModel or SQLAlchemy.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    WithJsonSchema,
    field_validator,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


UtcDatetime = Annotated[datetime, PlainSerializer(rfc3339, return_type=str, when_used="json")]


# PostgreSQL text cannot hold U+0000, and a lone surrogate (a JSON "\ud800" escape) has no UTF-8 form.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> str:
    if UNSTORABLE.search(value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    return value


def _each_text(value: Any) -> Any:
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            storable_text(item)
    return value


# RFC 3339 date-time: seconds and a Z or +hh:mm offset required; pydantic alone would also take unix
# timestamps (numbers or digit strings), "+hhmm" offsets and minutes-only times.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.ASCII | re.I)


def _rfc3339_string(value: Any) -> Any:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time string with an offset, e.g. 2030-01-01T09:00:00Z")
    return value


def _in_calendar(value: datetime) -> datetime:
    # Room on both sides for reminder lead times and for rendering in UTC (years 1-9999).
    if not 1900 <= value.year <= 9998 or not 1900 <= value.astimezone(UTC).year <= 9998:
        raise ValueError("must be between the years 1900 and 9998")
    return value


def _strip_title(value: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= 500:
        raise ValueError("must be 1-500 characters after trimming white space")
    return value


def _normalize_tags(tags: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for tag in tags:
        tag = tag.strip().lower()
        if not 1 <= len(tag) <= 50:
            raise ValueError("each tag must be 1-50 characters")
        seen.setdefault(tag)
    if len(seen) > 20:
        raise ValueError("at most 20 tags")
    return list(seen)


# The OIDC limit for `sub`; user ids sit in b-tree indexes, whose entries hold at most ~2.7 kB
# (255 characters are at most 1,020 bytes of UTF-8).
MAX_USER_ID = 255


def user_id_problem(value: str) -> str | None:
    """What keeps `value` from being a user id (a token's `sub`), or None."""
    if not value.strip():
        return "must be a non-empty string"
    if len(value) > MAX_USER_ID or UNSTORABLE.search(value):
        return f"must be at most {MAX_USER_ID} characters, without NUL characters or unpaired surrogates"
    return None


def _user_id(value: str) -> str:
    problem = user_id_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _strip_name(value: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= 200:
        raise ValueError("must be 1-200 characters after trimming white space")
    return value


# A user id as the token's `sub` gives it: taken as it is (no trimming), so it names the same user.
UserId = Annotated[
    str,
    AfterValidator(_user_id),
    WithJsonSchema({"type": "string", "maxLength": MAX_USER_ID, "pattern": r"\S"}),
]
ProjectName = Annotated[
    str, AfterValidator(_strip_name), WithJsonSchema({"type": "string", "maxLength": 200, "pattern": r"\S"})
]
Color = Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# Kept as written (white space and all): it is someone's prose.
CommentBody = Annotated[str, Field(min_length=1, max_length=10_000), AfterValidator(_not_blank)]

# The document says "not blank": the server trims first, so it also takes a longer, padded title.
Title = Annotated[
    str, AfterValidator(_strip_title), WithJsonSchema({"type": "string", "maxLength": 500, "pattern": r"\S"})
]
Description = Annotated[str, Field(max_length=10_000)]
# An input instant: an RFC 3339 string with an offset, never a number; the pattern says "years 1900-".
INSTANT_SCHEMA = {"type": "string", "format": "date-time", "pattern": "^(19|[2-9][0-9])[0-9]{2}-"}
Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_string),
    AfterValidator(_in_calendar),
    WithJsonSchema(INSTANT_SCHEMA),
]
# Each tag is trimmed before its length is checked, as titles are.
Tag = Annotated[str, WithJsonSchema({"type": "string", "maxLength": 50, "pattern": r"\S"})]
Tags = Annotated[list[Tag], Field(max_length=100), AfterValidator(_normalize_tags)]
# Strict: a JSON integer only (no true, 5.0 or "5").
RemindBefore = Annotated[int, Strict(), Field(ge=0, le=525_600)]  # at most a year
MaxOccurrences = Annotated[int, Strict(), Field(ge=1, le=1_000_000)]


class Priority(enum.StrEnum):
    # Declaration order is the sort order: PostgreSQL enums compare by it.
    low = "low"
    medium = "medium"
    high = "high"


class Input(BaseModel):
    """A request body: unknown fields refused, and no text field may hold what PostgreSQL cannot store."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return _each_text(value)
