"""Webhook delivery rules that need no I/O: the signature, the backoff, the excerpt, subscribable types."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from todo_backend.catalog import by_name
from todo_backend.errors import Unprocessable
from todo_backend.events import CLOUDEVENT_TYPES
from todo_backend.webhooks.delivery import (
    EXCERPT_CHARS,
    MAX_BACKOFF_SECONDS,
    backoff_seconds,
    body_of,
    excerpt,
    signature,
)
from todo_backend.webhooks.subscriptions import SUBSCRIBABLE_TYPES, validate_event_types


def test_the_signature_is_the_hex_hmac_sha256_of_the_exact_body_with_the_secret() -> None:
    body = body_of({"id": "e1", "data": {"task": {"title": "Grüße"}}})
    expected = hmac.new(b"s3cret-s3cret-s3cret", body, hashlib.sha256).hexdigest()
    assert signature("s3cret-s3cret-s3cret", body) == f"sha256={expected}"


def test_the_signature_changes_with_one_byte_of_the_body_or_the_secret() -> None:
    body = body_of({"id": "e1"})
    assert signature("secret-one-secret", body) != signature("secret-two-secret", body)
    assert signature("secret-one-secret", body) != signature("secret-one-secret", body + b" ")


def test_the_body_is_the_payload_as_compact_utf8_json() -> None:
    payload = {"specversion": "1.0", "data": {"title": "Grüße"}}
    body = body_of(payload)
    assert json.loads(body) == payload
    assert "Grüße".encode() in body


@pytest.mark.parametrize("attempts", range(1, 20))
def test_backoff_doubles_per_attempt_up_to_an_hour_and_jitter_takes_at_most_half(attempts: int) -> None:
    base = min(2**attempts, MAX_BACKOFF_SECONDS)
    assert backoff_seconds(attempts, 0.0) == base
    assert backoff_seconds(attempts, 0.999999) == pytest.approx(base / 2, rel=1e-5)
    assert base / 2 <= backoff_seconds(attempts, 0.5) <= base


def test_backoff_is_capped_even_for_absurd_attempt_counts() -> None:
    assert backoff_seconds(10_000, 0.0) == MAX_BACKOFF_SECONDS


def test_the_excerpt_keeps_at_most_512_characters_and_survives_invalid_utf8() -> None:
    assert len(excerpt(b"x" * 10_000)) == EXCERPT_CHARS == 512
    assert excerpt("é".encode() * 600) == "é" * 512
    assert excerpt(b"ok \xff\xfe") == "ok \ufffd\ufffd"


def test_the_four_task_types_and_the_reminder_type_are_subscribable() -> None:
    assert set(SUBSCRIBABLE_TYPES) == {
        "dev.todo.task.created",
        "dev.todo.task.updated",
        "dev.todo.task.completed",
        "dev.todo.task.deleted",
        "dev.todo.reminder.due",
    }
    assert set(SUBSCRIBABLE_TYPES) <= set(CLOUDEVENT_TYPES.values())


def test_deliver_webhooks_consumes_exactly_the_subscribable_types() -> None:
    # A subscription to a type the consumer never receives would silently never fire.
    assert set(by_name("deliver-webhooks").event_types) == set(SUBSCRIBABLE_TYPES)


def test_requested_types_are_deduplicated_in_order() -> None:
    requested = ["dev.todo.task.completed", "dev.todo.task.created", "dev.todo.task.completed"]
    assert validate_event_types(requested) == ["dev.todo.task.completed", "dev.todo.task.created"]


@pytest.mark.parametrize("bad", ["dev.todo.task.exploded", "dev.todo.task.*", "", "DEV.TODO.TASK.CREATED"])
def test_an_unknown_event_type_is_unprocessable_naming_the_field(bad: str) -> None:
    with pytest.raises(Unprocessable) as raised:
        validate_event_types(["dev.todo.task.created", bad])
    assert raised.value.field == "event_types"
