"""The records the publishers write, built directly, are the ones the CloudEvents SDK's Kafka binding
would write (an independent implementation), for any row; and read back through the SDK, as a
KafkaSource or the local dispatcher reads them, they are the event that was stored."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from cloudevents.http import CloudEvent
from cloudevents.kafka import KafkaMessage, from_binary, to_binary
from hypothesis import given
from hypothesis import strategies as st

from todo_backend.messaging import to_kafka_record
from todo_backend.stored import to_cloudevent_json

text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=10,
)
rows = st.builds(
    SimpleNamespace,
    sequence=st.integers(1, 2**62),
    id=st.uuids(version=4),
    type=st.sampled_from(["dev.todo.task.created", "dev.todo.reminder.due"]),
    source=text.map(lambda t: f"/functions/{t}"),
    subject=text,
    time=st.datetimes(timezones=st.just(UTC)),
    partition_key=text,
    user_id=text,
    data=st.dictionaries(text, json_values, max_size=4),
    project_id=st.none() | st.uuids(version=4).map(str),
    traceparent=st.none() | st.just("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    tracestate=st.none() | st.just("rojo=00f067aa0ba902b7"),
)


def _by_the_sdk(row: Any) -> tuple[bytes, list[tuple[str, bytes]], bytes]:
    payload = to_cloudevent_json(row)
    message = to_binary(
        CloudEvent(payload, payload.pop("data")), key_mapper=lambda e: e["partitionkey"].encode()
    )
    return message.key, list(message.headers.items()), message.value


@given(rows)
def test_a_record_is_the_one_the_sdk_would_write(row: Any) -> None:
    assert to_kafka_record(row) == _by_the_sdk(row)


@given(rows)
def test_a_row_with_its_data_as_stored_json_text_gives_the_same_event(row: Any) -> None:
    """The relay reads `data` as PostgreSQL's text of the JSONB and sends it as it is."""
    stored = SimpleNamespace(**{**vars(row), "data": json.dumps(row.data, ensure_ascii=False, indent=1)})
    key, headers, value = to_kafka_record(stored)
    expected_key, expected_headers, _ = _by_the_sdk(row)
    assert (key, headers) == (expected_key, expected_headers)
    event = from_binary(KafkaMessage(dict(headers), key, value))
    assert event.get_data() == row.data
    assert event["id"] == str(row.id) and event["partitionkey"] == row.partition_key.encode()


def test_a_records_headers_name_every_attribute_but_the_key() -> None:
    row = SimpleNamespace(
        sequence=3,
        id=uuid.uuid4(),
        type="dev.todo.task.created",
        source="/functions/create-task",
        subject="t",
        time=datetime(2026, 12, 3, tzinfo=UTC),
        partition_key="t",
        user_id="ada",
        data={"task": {}},
        project_id="p",
        traceparent=None,
        tracestate=None,
    )
    _, headers, _ = to_kafka_record(row)
    assert [name for name, _ in headers] == [
        "content-type",
        *(
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_subject",
            "ce_time",
            "ce_userid",
            "ce_sequence",
            "ce_projectid",
        ),
    ]
