"""Trace context: what is accepted from callers, how spans descend from it, where it is written."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import uuid

from hypothesis import given
from hypothesis import strategies as st

from todo_backend import events, logs, stored, tracing
from todo_backend.catalog import source_checkout
from todo_backend.messaging import to_kafka_record
from todo_backend.models import Task

VALID = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_and_tracestate_are_taken_as_they_are() -> None:
    parsed = tracing.parse(PARENT, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    assert parsed == tracing.TraceContext(PARENT, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    assert parsed.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_what_the_spec_calls_invalid_is_no_parent() -> None:
    for bad in (
        None,
        42,
        "",
        PARENT.upper(),  # lowercase only
        "ff" + PARENT[2:],  # version ff
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-4bf92f3577b34da6a3ce929d0e0e4736-{'0' * 16}-01",  # all-zero span id
        PARENT + "-extra",
        PARENT[:-1],
    ):
        assert tracing.parse(bad) is None, bad


def test_a_later_version_is_read_by_its_first_55_characters() -> None:
    later = "cc" + PARENT[2:] + "-what-comes-next"
    assert tracing.parse(later) == tracing.TraceContext("00" + PARENT[2:])
    assert tracing.parse("cc" + PARENT[2:] + "x") is None  # the fields must end with a "-"


def test_a_tracestate_that_is_not_printable_ascii_is_dropped_and_the_parent_kept() -> None:
    assert tracing.parse(PARENT, "a=b\nc=d") == tracing.TraceContext(PARENT)
    assert tracing.parse(PARENT, "x" * 513) == tracing.TraceContext(PARENT)


@given(st.one_of(st.text(max_size=80), st.binary(max_size=60).map(lambda b: b.hex())), st.text(max_size=40))
def test_any_header_yields_no_parent_or_a_valid_one_never_an_error(traceparent: str, tracestate: str) -> None:
    parsed = tracing.parse(traceparent, tracestate)
    assert parsed is None or (
        VALID.fullmatch(parsed.traceparent) and parsed.traceparent == "00" + traceparent[2:55]
    )


def test_a_child_keeps_the_trace_and_flags_with_a_span_id_of_its_own() -> None:
    parent = tracing.TraceContext(PARENT, "k=v")
    child = tracing.child_of(parent)
    assert VALID.fullmatch(child.traceparent)
    assert (child.traceparent[:36], child.traceparent[52:], child.tracestate) == (PARENT[:36], "-01", "k=v")
    assert child.traceparent[36:52] != PARENT[36:52]


def test_without_a_parent_a_span_starts_a_new_unsampled_trace() -> None:
    first, second = tracing.child_of(None), tracing.child_of(None)
    assert VALID.fullmatch(first.traceparent) and first.traceparent.endswith("-00")
    assert first.trace_id != second.trace_id


def test_inside_a_span_rows_written_carry_it_and_log_lines_name_its_trace() -> None:
    formatter = logs.JsonFormatter("create-task")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    task = Task(user_id="ada", title="t")
    with tracing.span("POST create-task", tracing.parse(PARENT, "k=v")) as context:
        row = events.to_outbox_row(events.TaskCreated(task), "create-task")
        line = json.loads(formatter.format(record))
    assert tracing.current() is None and "trace_id" not in json.loads(formatter.format(record))
    assert (row.traceparent, row.tracestate) == (context.traceparent, "k=v")
    assert line["trace_id"] == context.trace_id == tracing.parse(PARENT).trace_id  # type: ignore[union-attr]
    row.sequence, row.id = 7, uuid.uuid4()
    cloudevent = stored.to_cloudevent_json(row)
    assert (cloudevent["traceparent"], cloudevent["tracestate"]) == (context.traceparent, "k=v")
    _, headers, _ = to_kafka_record(row)
    assert dict(headers)["ce_traceparent"] == context.traceparent.encode()


def test_a_row_written_outside_any_span_has_no_trace_attributes() -> None:
    row = events.to_outbox_row(events.TaskCreated(Task(user_id="ada", title="t")), "create-task")
    row.sequence = 1
    assert row.traceparent is None and "traceparent" not in stored.to_cloudevent_json(row)


def test_without_an_endpoint_no_opentelemetry_module_is_ever_imported() -> None:
    """The cold start pays nothing for tracing: a function imported, configured and serving spans."""
    code = """
import sys
sys.path.insert(0, "functions/create_task")
import main  # the function, with everything it imports
from todo_backend import tracing
from todo_backend.settings import Settings
tracing.configure(Settings(database_url="postgresql://x/y", jwt_secret="s" * 32), "create-task")
with tracing.span("POST create-task", None):
    pass
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=source_checkout(),
    )
    assert out.stdout.strip() == "[]"
